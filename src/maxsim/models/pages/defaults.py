"""Defaults of page collections (a light module: a search over a page collection imports it
without the page models)."""

PAGE_BATCH = 8  # pages per forward pass: a page is ~1,000 tokens (ColPali: 1,030)
# pool factor for collections of pages: a third of the vectors; the ColPali authors report ~97.8 % of
# retrieval quality kept at 3 (docs/pages.md, Token pooling for pages)
PAGE_POOL_FACTOR = 3
