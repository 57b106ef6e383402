"""The site's one stylesheet and its one first-party script, as the builder writes them.

``build/site.py`` calls :func:`stylesheet` once per build and ships :data:`BLOCKS_JS` when a
page has a contact form or a gallery. Theme values are pattern-checked (``#rrggbb``, a font
from a fixed list) before they get here, so nothing user-written but a validated colour
reaches the CSS. The stylesheet also reserves the height of every embed and of the footer
(runbook 4's CLS case): no block shifts the layout when its content arrives.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.build.content import Theme

__all__ = ["BLOCKS_JS", "FOOTER_MIN_HEIGHT", "FOOTER_MIN_HEIGHT_MOBILE", "stylesheet"]

FOOTER_MIN_HEIGHT = "6rem"  # reserved so a late footer never shifts the page (runbook 4, CLS)
FOOTER_MIN_HEIGHT_MOBILE = "9rem"  # narrow screens wrap the links onto more lines

FONT_STACKS = {
    "system": 'system-ui,-apple-system,"Segoe UI",Roboto,sans-serif',
    "sans-serif": '"Helvetica Neue",Arial,sans-serif',
    "serif": 'Georgia,"Times New Roman",serif',
    "monospace": "ui-monospace,Menlo,Consolas,monospace",
}

DEFAULT_COLORS = {
    "primary": "#1f6feb",
    "background": "#ffffff",
    "text": "#1f2328",
    "accent": "#d97706",
}

BASE_CSS = """\
*,*::before,*::after{box-sizing:border-box}
body{margin:0;font-family:var(--font);color:var(--text);background:var(--background);\
line-height:1.6}
h1,h2,h3{font-family:var(--heading-font);line-height:1.2}
img{max-width:100%;height:auto}
a{color:var(--primary)}
main,.site-header nav,.site-footer{max-width:60rem;margin:0 auto;padding:0 1rem}
.site-header nav ul{display:flex;flex-wrap:wrap;gap:1rem;list-style:none;margin:0;\
padding:1rem 0}
.site-header a[aria-current]{font-weight:700;text-decoration:none}
.hero{display:grid;gap:1rem;padding:2rem 0}
.hero .lead{font-size:1.25rem}
.button,.contact button{display:inline-block;padding:.6rem 1.2rem;border:0;border-radius:.4rem;\
background:var(--primary);color:var(--background);font:inherit;text-decoration:none;\
cursor:pointer}
figure{margin:1.5rem 0}
figcaption{font-size:.9rem;opacity:.8}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(10rem,1fr));gap:.5rem;\
list-style:none;padding:0}
.gallery img{display:block;width:100%;aspect-ratio:1;object-fit:cover}
.lightbox{padding:0;border:0;max-width:95vw;max-height:95vh}
.lightbox::backdrop{background:rgba(0,0,0,.8)}
.contact{display:grid;gap:.75rem;max-width:32rem}
.contact label{display:block;font-weight:600}
.contact input,.contact textarea{width:100%;padding:.5rem;font:inherit;border:1px solid;\
border-radius:.3rem}
.embed{margin:1.5rem 0}
.site-footer{padding:2rem 1rem;border-top:1px solid var(--accent)}
.site-footer ul{display:flex;flex-wrap:wrap;gap:1rem;list-style:none;padding:0}
"""

# The first-party script: contact forms open WhatsApp or the mail client with the visitor's
# text; gallery links open in a <dialog>. Without JavaScript both still work (form action,
# plain links). It reads only data-* attributes the builder wrote, never user HTML.
BLOCKS_JS = """\
(function(){"use strict";
document.querySelectorAll("form[data-contact]").forEach(function(form){
form.addEventListener("submit",function(ev){ev.preventDefault();var lines=[];
Array.prototype.forEach.call(form.elements,function(el){if(!el.name||!el.value)return;
var label=form.querySelector('label[for="'+el.id+'"]');
lines.push((label?label.textContent:el.name)+": "+el.value);});
var text=encodeURIComponent(lines.join("\\n"));var to=form.getAttribute("data-recipient");
window.location.href=form.getAttribute("data-contact")==="whatsapp"?
"https://wa.me/"+to.replace(/\\D/g,"")+"?text="+text:"mailto:"+to+"?body="+text;});});
document.querySelectorAll("[data-gallery] a").forEach(function(link){
link.addEventListener("click",function(ev){if(typeof HTMLDialogElement!=="function")return;
ev.preventDefault();var dialog=document.createElement("dialog");dialog.className="lightbox";
var img=document.createElement("img");var thumb=link.querySelector("img");img.src=link.href;
img.alt=thumb?thumb.alt:"";dialog.appendChild(img);
dialog.addEventListener("click",function(){dialog.close();dialog.remove();});
document.body.appendChild(dialog);dialog.showModal();});});
})();
"""


def stylesheet(theme: Theme, embed_heights: Sequence[int] = ()) -> bytes:
    colors = {
        name: getattr(theme.colors, name) or default for name, default in DEFAULT_COLORS.items()
    }
    # Values are pattern-checked (#rrggbb, a fixed font name), so nothing user-written but a
    # validated colour reaches the CSS.
    variables = ";".join(f"--{name}:{value}" for name, value in colors.items())
    font = FONT_STACKS[theme.font]
    heading = FONT_STACKS[theme.heading_font or theme.font]
    root = f":root{{{variables};--font:{font};--heading-font:{heading}}}\n"
    reserved = "".join(
        f".embed-h{height}{{min-height:{height}px}}\n" for height in sorted(set(embed_heights))
    )
    footer = (
        f".site-footer{{min-height:{FOOTER_MIN_HEIGHT};contain:layout}}\n"
        f"@media (max-width:40rem){{.site-footer{{min-height:{FOOTER_MIN_HEIGHT_MOBILE}}}}}\n"
    )
    return (root + BASE_CSS + footer + reserved).encode("utf-8")
