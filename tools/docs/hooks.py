"""MkDocs hook: serve the vendored Mermaid build from the site itself.

Material for MkDocs loads Mermaid from a CDN unless ``window.mermaid`` already exists. The site
ships its own copy instead, installed from the npm registry by ``scripts/install.sh``
(``npm ci`` in ``tools/docs``, pinned by its ``package-lock.json``) and added to the build here,
so neither building nor viewing the site needs the internet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

HERE = Path(__file__).resolve().parent
MERMAID = HERE / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
SITE_PATH = "assets/vendor/mermaid.min.js"


def on_files(files: Files, config: Any) -> Files:
    """Add the vendored ``mermaid.min.js`` to the site, or stop the build without it."""
    if not MERMAID.is_file():
        raise PluginError(
            f"{MERMAID} is missing: run `npm ci` in tools/docs (scripts/install.sh does)"
        )
    files.append(File.generated(config, SITE_PATH, abs_src_path=str(MERMAID)))
    return files
