"""What the leaders read: the three colours, the daily log, the weekly report, the
meeting agenda and the period reports.

* :mod:`.board`: the three colours with their reasons (a pure rule, and ``unit_board``);
* :mod:`.periods`: the day, week or range a report covers, checked;
* :mod:`.logs`: the daily log and the weekly report (figures, HTML);
* :mod:`.agenda`: a sub-bureau's meeting agenda (figures, HTML);
* :mod:`.period`: the rates by unit and by kind over any range, and their Excel file;
* :mod:`.pdf`: printable PDFs with the Chinese font embedded;
* :mod:`.making`: the files, the "made" marker and the leaders' texts, and the
  once-a-day loop that makes them;
* :mod:`.commands`: ``gateway report daily|weekly|agenda|period``.

Every figure is read on the store's read-only connection.
"""
