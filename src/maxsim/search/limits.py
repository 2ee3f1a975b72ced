"""Size limits of what users store, in one place for the library, the CLI and the service."""

MAX_ID_CHARS = 512  # one document id
MAX_METADATA_BYTES = 64 << 10  # one document's metadata as UTF-8 JSON
MAX_METADATA_DEPTH = 16  # nesting of dicts and lists in metadata
MAX_LIST = 1000  # documents per page of a listing
