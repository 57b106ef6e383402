"""Builds: a content snapshot from D1 ``site_versions`` -> validated blocks -> static files.

``content.py`` defines and parses the snapshot, ``site.py`` renders it into files with a content
hash, sizes for the performance budget and the Cloudflare Pages manifest (``assethash.py``).
``errors.py`` holds ``BuildError``. The publisher (runtime) calls these; nothing here does I/O.
"""
