"""HTML of the plain blocks: text, contact form, footer, and the site's navigation.

``build/site.py`` calls these while rendering a page (images are ``build/images.py``'s). Every
user string is escaped with ``html.escape(..., quote=True)`` where it is written; no user
string reaches a script or a style. Pure functions of the validated blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from reconciler.build.content import ContactFormBlock, FooterBlock, Page, TextBlock

__all__ = ["contact_form_html", "footer_html", "nav_html", "text_html"]


def text_html(block: TextBlock) -> str:
    """Markdown-ish text: ``## `` headings, ``- `` lists, blank-line paragraphs, <br> lines."""
    out: list[str] = ['<section class="text">']
    paragraph: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if paragraph:
            out.append("<p>" + "<br>".join(paragraph) + "</p>")
            paragraph.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>")
            items.clear()

    for raw_line in block.text.splitlines():
        line = raw_line.strip()
        if not line:
            flush()
        elif line.startswith("### "):
            flush()
            out.append(f"<h3>{escape(line[4:].strip())}</h3>")
        elif line.startswith(("## ", "# ")):
            flush()
            out.append(f"<h2>{escape(line.lstrip('#').strip())}</h2>")
        elif line.startswith(("- ", "* ")):
            if paragraph:
                out.append("<p>" + "<br>".join(paragraph) + "</p>")
                paragraph.clear()
            items.append(escape(line[2:].strip()))
        else:
            if items:
                flush()
            paragraph.append(escape(line))
    flush()
    out.append("</section>")
    return "".join(out)


_INPUT_TYPES = {"text": "text", "email": "email", "tel": "tel"}


def contact_form_html(block: ContactFormBlock, index: int) -> str:
    recipient = escape(block.recipient)
    if block.target == "whatsapp":
        digits = "".join(ch for ch in block.recipient if ch.isdigit())
        opening = (
            f'<form class="contact" data-contact="whatsapp" data-recipient="{recipient}" '
            f'action="https://wa.me/{digits}" method="get">'
        )
    else:
        opening = (
            f'<form class="contact" data-contact="email" data-recipient="{recipient}" '
            f'action="mailto:{recipient}" method="post" enctype="text/plain">'
        )
    parts = [opening]
    for form_field in block.fields:
        ident = escape(f"b{index}-{form_field.name}")
        name = escape(form_field.name)
        required = " required" if form_field.required else ""
        label = f'<label for="{ident}">{escape(form_field.label)}</label>'
        if form_field.kind == "textarea":
            control = f'<textarea id="{ident}" name="{name}" rows="5"{required}></textarea>'
        else:
            kind = _INPUT_TYPES[form_field.kind]
            control = f'<input id="{ident}" name="{name}" type="{kind}"{required}>'
        parts.append(f"<p>{label}{control}</p>")
    parts.append(f'<button type="submit">{escape(block.submit_label)}</button></form>')
    return "".join(parts)


def footer_html(block: FooterBlock) -> str:
    parts = ['<footer class="site-footer">']
    if block.text:
        parts.append(f"<p>{escape(block.text)}</p>")
    if block.links:
        links = "".join(
            f'<li><a href="{escape(link.url)}">{escape(link.label)}</a></li>'
            for link in block.links
        )
        parts.append(f"<ul>{links}</ul>")
    parts.append("</footer>")
    return "".join(parts)


def nav_html(pages: Sequence[Page], current: str | None) -> str:
    if len(pages) < 2:
        return ""
    items = []
    for page in pages:
        here = ' aria-current="page"' if page.path == current else ""
        items.append(f'<li><a href="{escape(page.path)}"{here}>{escape(page.title)}</a></li>')
    return f'<header class="site-header"><nav><ul>{"".join(items)}</ul></nav></header>'
