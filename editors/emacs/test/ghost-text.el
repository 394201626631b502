;;; ghost-text.el --- quicksilver.el in a real Emacs with eglot and the real server  -*- lexical-binding: t -*-
;;
;; Keystrokes as a user types them (`execute-kbd-macro' runs the command loop and its hooks): typing at the end of
;; a line shows a suggestion as an overlay on its own, C-b hides it (quicksilver/didDismiss), C-c C-q asks again and
;; TAB inserts it.  Run by tests/test_editors_emacs.py:
;;
;;   QS_PYTHON=.venv/bin/python QS_SERVER_DIR=. QS_LOG=/tmp/server.log QS_FILE=x.py QS_LINE=4 QS_TYPE=y \
;;   QS_OUT=/tmp/report.json emacs --batch -Q -l editors/emacs/test/load-eglot.el \
;;     -l editors/emacs/quicksilver.el -l editors/emacs/test/ghost-text.el
;;
;; Writes one JSON object to QS_OUT; exits 0, or 1 after writing {"error": ...}.  Nothing about the suggestion's
;; content is checked here (the bundled model is an early checkpoint): the Python test reads the report.

(require 'json)
(require 'python)
(require 'quicksilver)

(defvar qs-report nil)

(defun qs-note (key value) (push (cons key value) qs-report))

(defun qs-wait (what seconds predicate)
  "Run timers and process output until PREDICATE is non-nil; error after SECONDS."
  (let ((deadline (+ (float-time) seconds)) value)
    (while (and (not (setq value (funcall predicate))) (< (float-time) deadline))
      (accept-process-output nil 0.05))
    (or value (error "Timed out waiting for %s" what))))

(defun qs-overlays ()
  "The ghost-text overlays: (START . TEXT) each."
  (cl-loop for overlay in (overlays-in (point-min) (point-max))
           when (overlay-get overlay 'quicksilver)
           collect (cons (overlay-start overlay) (substring-no-properties (overlay-get overlay 'after-string)))))

(defun qs-type (keys) (execute-kbd-macro (kbd keys)))

(defun qs-run ()
  (setq quicksilver-python (getenv "QS_PYTHON")
        quicksilver-server-directory (getenv "QS_SERVER_DIR")
        quicksilver-log-file (getenv "QS_LOG")
        quicksilver-idle-delay 0.03
        quicksilver-settings '(:logLevel "info")
        eglot-sync-connect 120
        eglot-connect-timeout 120)
  (quicksilver-setup)
  (find-file (getenv "QS_FILE"))
  (python-mode)
  ;; What M-x eglot does: the contact comes from `eglot-server-programs', as `quicksilver-setup' left it.
  (apply #'eglot (eglot--guess-contact))
  (qs-note 'server_name (plist-get (eglot--server-info (eglot-current-server)) :name))
  (qs-note 'mode_on quicksilver-mode)

  ;; Type at the end of the line: post-command-hook -> timer -> automatic request -> overlay.
  (goto-char (point-min))
  (forward-line (string-to-number (getenv "QS_LINE")))
  (end-of-line)
  (qs-type (getenv "QS_TYPE"))
  (let ((end (point)))
    (qs-wait "a suggestion while typing" 180 (lambda () quicksilver--suggestion))
    (qs-note 'point end)
    (qs-note 'auto (plist-get quicksilver--suggestion :text))
    (qs-note 'auto_overlays (vconcat (mapcar (lambda (o) (vector (car o) (cdr o))) (qs-overlays))))
    (qs-note 'line_during (buffer-substring-no-properties (line-beginning-position) (line-end-position)))

    ;; Another command hides it and reports the dismissal.
    (qs-type "C-b")
    (qs-note 'after_dismiss_overlays (length (qs-overlays)))
    (qs-note 'after_dismiss_visible quicksilver--visible)
    (qs-type "C-f")

    ;; C-c C-q asks now; TAB inserts.
    (qs-type "C-c C-q")
    (qs-wait "a suggestion on C-c C-q" 180 (lambda () quicksilver--suggestion))
    (let ((text (plist-get quicksilver--suggestion :text))
          (before (buffer-substring-no-properties (point-min) (point-max))))
      (qs-note 'invoked text)
      (qs-note 'invoked_overlays (vconcat (mapcar (lambda (o) (vector (car o) (cdr o))) (qs-overlays))))
      (qs-note 'before before)
      (qs-type "TAB")
      (qs-note 'after (buffer-substring-no-properties (point-min) (point-max)))
      (qs-note 'point_after (point))
      (qs-note 'overlays_after (length (qs-overlays)))))
  ;; the accept command is an async request: let it reach the server before shutting down
  (accept-process-output nil 0.5)
  (eglot-shutdown (eglot-current-server))
  (qs-note 'shut_down t))

(defun qs-write ()
  (with-temp-file (getenv "QS_OUT") (insert (json-encode qs-report))))

(condition-case err
    (progn (qs-run) (qs-write) (kill-emacs 0))
  (error (qs-note 'error (error-message-string err))
         (qs-write)
         (kill-emacs 1)))
