"""The examples of docs/integrations.md run as written (offline), in order, in one namespace."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "integrations.md"


def test_integration_examples_run(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # each block asserts its own result
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "[mars.md] Mars looks red because iron oxide dust covers its surface."
    assert printed[1].startswith("[('bread.md', ")
    namespace["index"].close()
