;;; load-eglot.el --- make eglot loadable under `emacs -Q'  -*- lexical-binding: t -*-
;; Emacs 29+ has eglot built in; on Emacs 28, Debian's elpa-eglot sits under site-lisp/elpa, which -Q leaves out
;; of `load-path', and a user's ELPA copy needs `package-initialize'.
(unless (locate-library "eglot")
  (require 'package)
  (package-initialize)
  (unless (locate-library "eglot")
    (dolist (dir (file-expand-wildcards "/usr/share/emacs/site-lisp/elpa/*"))
      (add-to-list 'load-path dir))))
(unless (locate-library "eglot")
  (message "eglot is not installed (Debian: elpa-eglot; or M-x package-install RET eglot)")
  (kill-emacs 3))
