;;; emacs.el --- Emacs with eglot (Debian's emacs-nox + elpa-eglot) as a real client  -*- lexical-binding: t -*-
;;
;; eglot starts the server, syncs the buffer as it is edited, and completes through
;; `completion-at-point' as a user's M-TAB would.
;;
;; Run:  QS_CMD='["python","-m","lsp_server"]' QS_FILE=x.py QS_LINE=4 QS_CHARACTER=54 QS_OUT=out.json \
;;       emacs --batch -l tests/clients/emacs.el
;; Writes one JSON object to QS_OUT; exits 0, or 1 after writing {"error": ...}.

(require 'json)
(require 'subr-x)
(unless (require 'eglot nil t)  ; Debian's elpa-eglot lives under site-lisp/elpa
  (dolist (dir (file-expand-wildcards "/usr/share/emacs/site-lisp/elpa/*"))
    (add-to-list 'load-path dir))
  (require 'eglot))
(require 'python)

(defvar qs-report nil "What the server answered, as an alist for `json-encode'.")

(defun qs-env-number (name) (string-to-number (getenv name)))

(defun qs-goto (line character)
  "Move to LINE, CHARACTER (0-based, ASCII text: columns equal UTF-16 units)."
  (goto-char (point-min))
  (forward-line line)
  (forward-char character))

(defun qs-inline-items (server)
  (let ((result (jsonrpc-request server :textDocument/inlineCompletion
                                 (append (eglot--TextDocumentPositionParams) '(:context (:triggerKind 1))))))
    (append (plist-get result :items) nil)))

(defun qs-complete-at-point ()
  "The candidates `completion-at-point' would offer here, through eglot's capf."
  (let ((capf (eglot-completion-at-point)))
    (unless capf (error "eglot offered no completion-at-point function"))
    (all-completions "" (nth 2 capf))))

(defun qs-run ()
  (let* ((cmd (append (json-read-from-string (getenv "QS_CMD")) nil))
         (file (getenv "QS_FILE"))
         (line (qs-env-number "QS_LINE"))
         (character (qs-env-number "QS_CHARACTER"))
         (eglot-sync-connect 120)
         (eglot-connect-timeout 120)
         (eglot-events-buffer-size 0))
    (find-file file)
    (python-mode)
    (let* ((project (cons 'transient (file-name-directory (expand-file-name file))))
           (server (eglot '(python-mode) project 'eglot-lsp-server cmd "python")))
      (unless (jsonrpc-running-p server) (error "eglot could not start the server"))
      (push (cons 'server_name (plist-get (eglot--server-info server) :name)) qs-report)
      (qs-goto line character)
      (push (cons 'capf (vconcat (qs-complete-at-point))) qs-report)
      (push (cons 'inline (vconcat (mapcar (lambda (item) (plist-get item :insertText))
                                           (qs-inline-items server))))
            qs-report)
      ;; The user types: eglot sends an incremental didChange before the next request.
      (insert " and")
      (eglot--signal-textDocument/didChange)
      (push (cons 'after_typing (vconcat (mapcar (lambda (item) (plist-get item :insertText))
                                                 (qs-inline-items server))))
            qs-report)
      (push (cons 'after_typing_column (current-column)) qs-report)
      (eglot-shutdown server)
      (push (cons 'shut_down (not (jsonrpc-running-p server))) qs-report))))

(defun qs-write ()
  (with-temp-file (getenv "QS_OUT") (insert (json-encode qs-report))))

(condition-case err
    (progn (qs-run) (qs-write) (kill-emacs 0))
  (error (push (cons 'error (error-message-string err)) qs-report)
         (qs-write)
         (kill-emacs 1)))
