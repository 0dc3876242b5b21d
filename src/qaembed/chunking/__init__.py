"""Documents as retrieval targets: sentence splitting, semantic chunking, positive-chunk selection.

* :func:`run_chunking` reads documents and Q&A pairs (:mod:`.sources`), chunks the documents
  (:func:`chunk_documents`: sentences of :mod:`.sentences` merged by the rule of :mod:`.semantic`)
  and picks each pair's positive chunk (:func:`select_positives`), then writes a folder:
  ``chunks.jsonl``, ``qa.jsonl``, ``stats.json``, ``chunking.json``;
* ``qaembed data chunk`` sits on it. See ``docs/chunking.md``.
"""

from qaembed.chunking.chunk import Chunk, ChunkingConfig, chunk_documents, select_positives
from qaembed.chunking.run import run_chunking
from qaembed.chunking.semantic import merge_sentences
from qaembed.chunking.sentences import split_sentences

__all__ = ["Chunk", "ChunkingConfig", "chunk_documents", "merge_sentences", "run_chunking", "select_positives", "split_sentences"]
