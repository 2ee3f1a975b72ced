"""Page-retrieval models (ColPali, ColQwen2, ColModernVBert): text queries against page images.

Exports are imported on first use (a search over a page collection needs its defaults, not the models)."""

from maxsim.lazy import lazy_exports

_EXPORTS = {**{name: "maxsim.models.pages.encoder" for name in ("EncodedPage", "PageEncoder")},
            **{name: "maxsim.models.pages.defaults" for name in ("PAGE_BATCH", "PAGE_POOL_FACTOR")},
            "PatchGrid": "maxsim.models.pages.grid", "page_family": "maxsim.models.pages.layout"}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
