"""Appeals from every channel: one matter, one case.

* :mod:`.service` — intake (idempotent by the channel's reference), joining a repeat to
  the citizen's open case, merging and splitting by hand; every step in the case's history;
* :mod:`.lifecycle` — assign, accept, answer, close, each by an officer of the right unit;
  the citizen's texts; the answer called back for a rating (kind ``appeal_answer``);
* :mod:`.similarity` — how close two appeals' texts are (character bigrams);
* :mod:`.web` — ``POST /api/cases``, ``GET /api/cases/{ref}``, ``…/merge``, ``…/split``,
  ``…/assign``, ``…/accept``, ``…/answer``, ``…/close``;
* :mod:`.commands` — ``gateway cases merge|split|assign|accept|answer|close``;
* :mod:`.exceptions` — what the service refuses, with the facts.
"""
