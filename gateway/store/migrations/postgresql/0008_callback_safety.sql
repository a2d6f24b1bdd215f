-- PostgreSQL form of ../0008_callback_safety.sql: the same tables and columns (tests/test_store_engines.py).
-- Callbacks that survive restarts, link cuts and races: how long a call may still be
-- up, when it was answered and when its survey began (so a bounded wait survives a
-- restart), which level of an order was texted, and a unit's short name for texts.

-- UTC; the latest moment this call may still be up on the PBX (NULL once it is known
-- to be over). No citizen is dialled while one of their attempts has it in the future.
ALTER TABLE callback_attempts ADD COLUMN up_until TEXT;
ALTER TABLE callback_attempts ADD COLUMN answered_at TEXT;
ALTER TABLE callback_attempts ADD COLUMN survey_started_at TEXT;
CREATE INDEX callback_attempts_up ON callback_attempts(up_until) WHERE up_until IS NOT NULL;
CREATE INDEX callback_attempts_open ON callback_attempts(outcome) WHERE ended_at IS NULL;
CREATE INDEX callback_attempts_answered ON callback_attempts(outcome, answered_at)
    WHERE outcome = 'answered';

-- The highest level whose heads were texted (0: none yet). The sweeper texts any open
-- order whose level is above it.
ALTER TABLE rectification_orders ADD COLUMN notified_level INTEGER NOT NULL DEFAULT 0;
UPDATE rectification_orders SET notified_level = level
    WHERE EXISTS (SELECT 1 FROM order_events e WHERE e.order_id = rectification_orders.id
                  AND e.level = rectification_orders.level AND e.action = 'notified');
CREATE INDEX rectification_orders_unnotified ON rectification_orders(status, notified_level, level);

-- A short form of the unit's name, used in texts when the full name does not fit.
ALTER TABLE units ADD COLUMN abbreviation TEXT;
