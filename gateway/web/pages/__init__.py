"""The dashboard's pages beyond the front page: charts, the board, the hotline wall,
a case's timeline with its recordings, and the reports (wired in :mod:`.routes`)."""
