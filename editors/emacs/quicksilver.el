;;; quicksilver.el --- Ghost-text code completion from Quicksilver, through eglot  -*- lexical-binding: t -*-

;; Version: 0.1.0
;; Package-Requires: ((emacs "27.1") (eglot "1.9") (jsonrpc "1.0.9"))
;; Keywords: tools, convenience, languages
;; SPDX-License-Identifier: MIT

;;; Commentary:

;; Quicksilver is a local code-completion language server (`python -m lsp_server').
;; This file does two things:
;;
;; - `quicksilver-setup' registers the server with eglot (`eglot-server-programs') for
;;   `quicksilver-modes', so M-x eglot starts it, and turns on `quicksilver-mode' in the
;;   buffers eglot then manages with it.
;; - `quicksilver-mode' asks the server for `textDocument/inlineCompletion' while you type
;;   (after `quicksilver-idle-delay') or on C-c C-q, and shows the answer as an overlay
;;   (ghost text).  TAB or C-c C-a inserts it; any other command hides it.
;;
;; Accepting runs the item's `quicksilver.accept' command and hiding it sends
;; `quicksilver/didDismiss', both counted in the server's own log only.
;; See editors/emacs/README.md.

;;; Code:

(require 'cl-lib)
(require 'subr-x)
(require 'jsonrpc)
(require 'eglot)

(defgroup quicksilver nil
  "Ghost-text completion from the Quicksilver language server."
  :group 'tools
  :prefix "quicksilver-")

(defcustom quicksilver-server-directory nil
  "Your Quicksilver checkout (the folder with lsp_server/ and .venv/).
The server runs there, so `python -m lsp_server' finds it even when
it is not installed.  nil: the checkout this file sits in
\(editors/emacs), if it is one."
  :type '(choice (const :tag "Where this file is" nil) directory))

(defcustom quicksilver-python nil
  "Python interpreter that runs the server.
nil: the checkout's .venv/bin/python if it exists, else python3."
  :type '(choice (const :tag "Automatic" nil) file))

(defcustom quicksilver-log-file (locate-user-emacs-file "quicksilver.log")
  "The server's log file.
nil: the log stays on stderr, in the buffer \" *quicksilver stderr*\"."
  :type '(choice file (const :tag "stderr" nil)))

(defcustom quicksilver-modes '(python-mode python-ts-mode)
  "Major modes whose buffers eglot serves with Quicksilver (`quicksilver-setup').
With eglot before Emacs 30 a buffer gets one server: these modes lose any other."
  :type '(repeat symbol))

(defcustom quicksilver-settings '(:latencyBudgetMs 150 :maxLines 1)
  "The server's settings, a plist.
Keys: :latencyBudgetMs :maxLines :enabledLanguages (a vector)
:backend :modelPath :logLevel.  Sent at start (initializationOptions)
and by `quicksilver-configure' (workspace/didChangeConfiguration,
section \"quicksilver\")."
  :type 'plist)

(defcustom quicksilver-auto-trigger t
  "Non-nil: ask for a suggestion after each typed character.
nil: only on `quicksilver-complete'."
  :type 'boolean)

(defcustom quicksilver-idle-delay 0.1
  "Seconds after the last typed character before asking.
The server debounces again, adapting to the typing speed."
  :type 'number)

(defcustom quicksilver-request-timeout 60
  "Seconds before a request is given up.
The first one may wait for the model to load."
  :type 'number)

(defface quicksilver-ghost-face '((t :inherit shadow))
  "Face of the ghost text.")

(defconst quicksilver--here
  (file-name-directory (or load-file-name buffer-file-name default-directory))
  "Where this file is: editors/emacs/ inside a Quicksilver checkout.")

;;;; Starting the server

(defun quicksilver--checkout-p (dir)
  (and dir (file-exists-p (expand-file-name "lsp_server/__main__.py" dir))))

(defun quicksilver-checkout ()
  "The Quicksilver checkout the server runs in, or nil when none is known."
  (let ((own (expand-file-name "../.." quicksilver--here)))
    (cond (quicksilver-server-directory (expand-file-name quicksilver-server-directory))
          ((quicksilver--checkout-p own) (file-name-as-directory own)))))

(defun quicksilver-server-command ()
  "The command line that starts the server."
  (let* ((checkout (quicksilver-checkout))
         (venv (and checkout (expand-file-name ".venv/bin/python" checkout)))
         (python (or quicksilver-python
                     (and venv (file-executable-p venv) venv)
                     "python3")))
    (append (list python "-m" "lsp_server")
            (and quicksilver-log-file (list "--log-file" (expand-file-name quicksilver-log-file))))))

(defun quicksilver--make-process ()
  "Start the server in the checkout (eglot would start it in the project)."
  (let ((default-directory (or (quicksilver-checkout) default-directory)))
    (make-process :name "quicksilver"
                  :command (quicksilver-server-command)
                  :connection-type 'pipe
                  :coding 'utf-8-emacs-unix
                  :noquery t
                  :stderr (get-buffer-create " *quicksilver stderr*")
                  :file-handler nil)))

(defun quicksilver-eglot-contact (&optional _interactive)
  "The eglot contact for Quicksilver: (CLASS . INITARGS).
See `eglot-server-programs'."
  (list 'eglot-lsp-server
        :process #'quicksilver--make-process
        :initializationOptions (lambda (_server) quicksilver-settings)))

(defun quicksilver--our-server-p (server)
  (and server (equal (plist-get (eglot--server-info server) :name) "quicksilver")))

(defun quicksilver--maybe-enable ()
  "In `eglot-managed-mode-hook': ghost text where the server is Quicksilver."
  (if (and (eglot-managed-p) (quicksilver--our-server-p (eglot-current-server)))
      (quicksilver-mode 1)
    (when (bound-and-true-p quicksilver-mode) (quicksilver-mode -1))))

;;;###autoload
(defun quicksilver-setup ()
  "Serve `quicksilver-modes' with Quicksilver through eglot, with ghost text.
Then M-x eglot in such a buffer (or `eglot-ensure' in the mode's
hook) starts it."
  (interactive)
  (setq eglot-server-programs
        (cons (cons quicksilver-modes #'quicksilver-eglot-contact)
              (cl-remove #'quicksilver-eglot-contact eglot-server-programs :key #'cdr)))
  (add-hook 'eglot-managed-mode-hook #'quicksilver--maybe-enable))

(defun quicksilver-configure (&optional settings)
  "Send SETTINGS (default `quicksilver-settings') to the running server."
  (interactive)
  (when settings (setq quicksilver-settings settings))
  (let ((server (eglot-current-server)))
    (unless (quicksilver--our-server-p server) (user-error "Quicksilver is not running in this buffer"))
    (jsonrpc-notify server :workspace/didChangeConfiguration
                    (list :settings (list :quicksilver quicksilver-settings)))))

;;;; Ghost text

(defvar-local quicksilver--suggestion nil
  "The suggestion shown: a plist (:text :start :id :overlay), or nil.")
(defvar-local quicksilver--visible nil
  "Non-nil while a suggestion is shown: turns on `quicksilver-suggestion-map'.")
(defvar-local quicksilver--timer nil)
(defvar-local quicksilver--asked nil
  "(TICK . POINT) of the latest request: answers for anything else are stale.")

(defvar quicksilver-suggestion-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "TAB") #'quicksilver-accept)
    (define-key map (kbd "<tab>") #'quicksilver-accept)
    (define-key map (kbd "C-c C-a") #'quicksilver-accept)
    map)
  "Keys active only while a suggestion is shown.")

(defvar quicksilver--emulation-alist `((quicksilver--visible . ,quicksilver-suggestion-map)))
(add-to-list 'emulation-mode-map-alists 'quicksilver--emulation-alist)

(defvar quicksilver-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "C-c C-q") #'quicksilver-complete)
    (define-key map (kbd "C-c C-a") #'quicksilver-accept)
    map))

(defun quicksilver--show (text start id)
  (quicksilver--hide)
  (let ((overlay (make-overlay start start nil nil t))
        (ghost (propertize text 'face 'quicksilver-ghost-face)))
    (put-text-property 0 1 'cursor t ghost) ; the cursor stays before the ghost text
    (overlay-put overlay 'after-string ghost)
    (overlay-put overlay 'quicksilver t)
    (overlay-put overlay 'priority 1000)
    (setq quicksilver--suggestion (list :text text :start start :id id :overlay overlay)
          quicksilver--visible t)))

(defun quicksilver--hide ()
  (when-let ((overlay (plist-get quicksilver--suggestion :overlay)))
    (delete-overlay overlay))
  (setq quicksilver--suggestion nil
        quicksilver--visible nil))

(defun quicksilver--answer (result tick point)
  "Show the first item of RESULT.
Only if the buffer is still as it was at TICK and POINT."
  (when (and (equal quicksilver--asked (cons tick point))
             (= tick (buffer-chars-modified-tick))
             (= point (point)))
    (let* ((items (if (vectorp result) result (plist-get result :items)))
           (item (and (> (length items) 0) (aref items 0)))
           (text (plist-get item :insertText))
           (range (plist-get item :range))
           (command (plist-get item :command)))
      (when (and (stringp text) (not (string-empty-p text)))
        (quicksilver--show text
                           (if range (eglot--lsp-position-to-point (plist-get range :start)) point)
                           (and command (aref (plist-get command :arguments) 0)))))))

(defun quicksilver--request (trigger-kind)
  "Ask for a suggestion at point; TRIGGER-KIND 1 is the user asking, 2 typing."
  (let ((server (eglot-current-server))
        (buffer (current-buffer)))
    (when (quicksilver--our-server-p server)
      (eglot--signal-textDocument/didChange) ; the request must see the last keystroke
      (let ((tick (buffer-chars-modified-tick))
            (point (point)))
        (setq quicksilver--asked (cons tick point))
        (jsonrpc-async-request
         server :textDocument/inlineCompletion
         (append (eglot--TextDocumentPositionParams) `(:context (:triggerKind ,trigger-kind)))
         :success-fn (lambda (result)
                       (when (buffer-live-p buffer)
                         (with-current-buffer buffer (quicksilver--answer result tick point))))
         :error-fn (lambda (error)
                     (unless (eql (plist-get error :code) -32800) ; cancelled: a newer request won
                       (message "quicksilver: %s" (plist-get error :message))))
         :timeout-fn #'ignore
         :timeout quicksilver-request-timeout)))))

(defun quicksilver-complete ()
  "Ask for a suggestion at point now."
  (interactive)
  (quicksilver--request 1))

(defun quicksilver-dismiss (&optional report)
  "Hide the suggestion.
REPORT (interactively: always) tells the server it was rejected."
  (interactive (list t))
  (let ((id (plist-get quicksilver--suggestion :id))
        (server (eglot-current-server)))
    (quicksilver--hide)
    (when (and report id (quicksilver--our-server-p server))
      (jsonrpc-notify server :quicksilver/didDismiss (list :id id)))))

(defun quicksilver-accept ()
  "Insert the suggestion shown."
  (interactive)
  (if (not quicksilver--suggestion)
      (when (called-interactively-p 'interactive) (message "quicksilver: no suggestion"))
    (let ((text (plist-get quicksilver--suggestion :text))
          (start (plist-get quicksilver--suggestion :start))
          (id (plist-get quicksilver--suggestion :id))
          (server (eglot-current-server)))
      (quicksilver--hide)
      (goto-char start)
      (insert text)
      (when (and id (quicksilver--our-server-p server))
        (jsonrpc-async-request server :workspace/executeCommand
                               (list :command "quicksilver.accept" :arguments (vector id))
                               :success-fn #'ignore :error-fn #'ignore :timeout-fn #'ignore)))))

(defun quicksilver--typed-ahead-p ()
  "Whether this command types the suggestion's next character.
Typing what is suggested is not a rejection."
  (and (eq this-command 'self-insert-command)
       (characterp last-command-event)
       (string-prefix-p (string last-command-event) (plist-get quicksilver--suggestion :text))))

(defun quicksilver--pre-command ()
  (when (and quicksilver--suggestion
             (not (memq this-command '(quicksilver-accept quicksilver-complete))))
    (quicksilver-dismiss (not (quicksilver--typed-ahead-p)))))

(defun quicksilver--post-command ()
  (when (and quicksilver-auto-trigger (eq this-command 'self-insert-command))
    (when (timerp quicksilver--timer) (cancel-timer quicksilver--timer))
    (let ((buffer (current-buffer)))
      (setq quicksilver--timer
            (run-with-timer quicksilver-idle-delay nil
                            (lambda ()
                              (when (buffer-live-p buffer)
                                (with-current-buffer buffer
                                  (setq quicksilver--timer nil)
                                  (quicksilver--request 2)))))))))

;;;###autoload
(define-minor-mode quicksilver-mode
  "Ghost-text suggestions from Quicksilver in an eglot-managed buffer.
\\<quicksilver-mode-map>\\[quicksilver-complete] asks now; TAB or \\[quicksilver-accept] inserts the suggestion shown;
any other command hides it."
  :lighter " QS"
  :keymap quicksilver-mode-map
  (if quicksilver-mode
      (progn (add-hook 'pre-command-hook #'quicksilver--pre-command nil t)
             (add-hook 'post-command-hook #'quicksilver--post-command nil t))
    (remove-hook 'pre-command-hook #'quicksilver--pre-command t)
    (remove-hook 'post-command-hook #'quicksilver--post-command t)
    (when (timerp quicksilver--timer) (cancel-timer quicksilver--timer))
    (quicksilver--hide)))

(provide 'quicksilver)
;;; quicksilver.el ends here
