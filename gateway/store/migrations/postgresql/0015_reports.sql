-- PostgreSQL form of ../0015_reports.sql: the same tables and columns (tests/test_store_engines.py).
-- Reports: what the once-a-day loop has made, and the indexes the period reports read.

-- One row per report made: the daily log of a local day, the weekly report of an ISO
-- week, the agenda of a unit's meeting. The loop writes it in the same transaction as
-- the leaders' texts, after the files are written: a restart neither skips a report
-- (no row yet: made again) nor repeats one (the row is there).
CREATE TABLE report_runs (
    kind        TEXT NOT NULL CHECK (kind IN ('daily', 'weekly', 'agenda')),
    key         TEXT NOT NULL,               -- YYYY-MM-DD, YYYY-Www, or YYYY-MM-DD/UNIT-CODE
    made_at     TEXT NOT NULL,               -- UTC
    made_by     TEXT NOT NULL,               -- 'schedule' or 'command'
    texts       INTEGER NOT NULL DEFAULT 0,  -- texts queued to the leaders
    PRIMARY KEY (kind, key)
);

-- Items of a period by how their callback ended, with their unit and kind (回访率 by unit
-- and by kind from the index alone).
CREATE INDEX served_items_status_served_unit ON served_items(status, served_at, unit_id, kind_code);

-- Hotline calls of a period with what the rates need (接通率, 15秒接通率, 放弃率), from the
-- index alone.
CREATE INDEX call_records_started_queue ON call_records(
    started_at, direction, originate_id, queue, agent, queue_wait_s, disposition
);

-- Appeals received in a period, by channel and whether they repeated an open case.
CREATE INDEX appeal_submissions_received ON appeal_submissions(received_at, channel, repeat);
