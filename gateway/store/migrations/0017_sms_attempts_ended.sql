-- A rating request by text is over once it is sent (the citizen's answer is a rating,
-- not an end of the attempt). Until now its attempt row stayed "open" (no ended_at)
-- for ever, and the partial index of open attempts, which every calls round searches,
-- grew by every text sent.
UPDATE callback_attempts SET ended_at = started_at WHERE channel = 'sms' AND ended_at IS NULL;
