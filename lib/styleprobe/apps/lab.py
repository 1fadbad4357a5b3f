"""JupyterLab's contents manager for the notebooks (`make lab` installs it): jupytext's, which opens the
py:percent sources as notebooks, and gives each notebook the `language_info` its Python kernel will report.

JupyterLab writes the kernel's `language_info` into a notebook's metadata when its kernel starts (and a
placeholder before that). The sources do not keep it (it names the Python version; jupytext.toml drops it
on save), so without this every notebook would open marked as modified and ask "Save changes?" on close."""

from __future__ import annotations

from typing import Any

from ipykernel.ipkernel import IPythonKernel
from jupytext import AsyncTextFileContentsManager


def kernel_language_info() -> dict[str, Any]:
    """What an IPython kernel of this Python reports as `language_info` (JupyterLab copies it verbatim)."""
    return dict(IPythonKernel.language_info)


class ContentsManager(AsyncTextFileContentsManager):
    """jupytext's contents manager; a Python notebook it reads carries its kernel's `language_info`."""

    async def get(self, path: str, content: bool = True, type: str | None = None, **kwargs: Any) -> dict:
        model = await super().get(path, content=content, type=type, **kwargs)
        if content and model["type"] == "notebook":
            metadata = model["content"].metadata
            if metadata.get("kernelspec", {}).get("language") == "python":
                metadata["language_info"] = kernel_language_info()
        return model
