"""The public site: landing page, tutor directory, SEO files and the installable PWA shell."""
