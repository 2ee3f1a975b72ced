"""Page-retrieval models (ColPali, ColQwen2, ColModernVBert): text queries against page images."""

from maxsim.models.pages.encoder import PAGE_POOL_FACTOR, EncodedPage, PageEncoder
from maxsim.models.pages.grid import PatchGrid
from maxsim.models.pages.layout import page_family

__all__ = ["PAGE_POOL_FACTOR", "EncodedPage", "PageEncoder", "PatchGrid", "page_family"]
