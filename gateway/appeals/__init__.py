"""Appeals from every channel: one matter, one case.

* :mod:`.service` — intake (idempotent by the channel's reference), joining a repeat to
  the citizen's open case, merging and splitting by hand; every step in the case's history;
* :mod:`.similarity` — how close two appeals' texts are (character bigrams);
* :mod:`.web` — ``POST /api/cases``, ``GET /api/cases/{ref}``, ``…/merge``, ``…/split``;
* :mod:`.commands` — ``gateway cases merge`` and ``gateway cases split``;
* :mod:`.exceptions` — what the service refuses, with the facts.
"""
