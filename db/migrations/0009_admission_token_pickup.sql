-- A host's admit from the waiting room lets one join token out: the
-- participant's status poll that collects it marks the admission, in the
-- statement that records the token (audit "waiting.token"), and later
-- polls get no token. NULL: not collected (or not from the waiting room).
ALTER TABLE admissions ADD COLUMN token_collected_at timestamptz;
