"""One parser per tool output format. Each takes the raw text and returns typed values.

Parsers never raise on odd input: what they cannot read ends up in an ``errors`` list on the
result, so the judge can say what was wrong with the file instead of crashing. They are written
against the real formats, including the quirks listed in tool-output-formats notes (MPI and srun
prefixes, timestamps, interleaved NCCL INFO lines, ANSI codes, N/A cells, older layouts).
"""
