-- PostgreSQL form of ../0006_call_records_span.sql: the same tables and columns (tests/test_store_engines.py).
-- Call records: time with seats, who ended the call, and the Originate that placed it
-- (the callback attempt stores the same ActionID in callback_attempts.action_id).

-- seconds talking with seats (AgentComplete TalkTime, summed)
ALTER TABLE call_records ADD COLUMN talk_s DOUBLE PRECISION;
-- gateway, caller, seat or pbx
ALTER TABLE call_records ADD COLUMN ended_by TEXT;
-- the gateway's Originate ActionID
ALTER TABLE call_records ADD COLUMN originate_id TEXT;
CREATE INDEX call_records_originate ON call_records(originate_id) WHERE originate_id IS NOT NULL;
CREATE INDEX call_records_open ON call_records(pbx) WHERE complete = 0;
-- Callbacks logged as inbound before this change (no dialplan read class): the attempt
-- that placed each one names its channel's Uniqueid and the Originate's ActionID.
UPDATE call_records
   SET direction = 'outbound',
       originate_id = COALESCE(originate_id, (
           SELECT a.action_id FROM callback_attempts a
            WHERE a.uniqueid = call_records.uniqueid AND a.action_id IS NOT NULL
            ORDER BY a.id DESC LIMIT 1))
 WHERE direction <> 'outbound'
   AND EXISTS (SELECT 1 FROM callback_attempts a WHERE a.uniqueid = call_records.uniqueid);
