-- PostgreSQL form of ../0007_sms_leases.sql: the same tables and columns (tests/test_store_engines.py).
-- Outbox claims become leases, the look-up before a re-send searches from the first
-- attempt, and replies a handler failed on are offered again.

-- When the first attempt began: set once, never overwritten by a later claim, so a
-- look-up after any gap searches back far enough.
ALTER TABLE sms_messages ADD COLUMN first_attempt_at TEXT;
UPDATE sms_messages SET first_attempt_at = claimed_at WHERE claimed_at IS NOT NULL;
-- Who is sending a 'sending' row, and until when; another worker reclaims it only
-- once the lease has expired (its holder died or stalled).
ALTER TABLE sms_messages ADD COLUMN lease_owner TEXT;
ALTER TABLE sms_messages ADD COLUMN lease_until TEXT;
UPDATE sms_messages SET lease_until = updated_at WHERE status = 'sending';
-- Leases in force (no sid yet): what expires next. Queries name the same literal
-- conditions so SQLite can use this partial index.
CREATE INDEX sms_messages_lease ON sms_messages(lease_until)
    WHERE status = 'sending' AND provider_sid IS NULL;
-- provider_sid is UNIQUE since 0004: one Twilio message belongs to one row only.

-- A reply not yet settled: offered to the handlers again from offer_at on (NULL:
-- settled, taken or not). Set when the reply is stored, so a crash mid-handling
-- is re-offered too.
ALTER TABLE sms_inbound ADD COLUMN offer_at TEXT;
ALTER TABLE sms_inbound ADD COLUMN offers INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sms_inbound ADD COLUMN offer_error TEXT;
CREATE INDEX sms_inbound_offer ON sms_inbound(offer_at) WHERE offer_at IS NOT NULL;
