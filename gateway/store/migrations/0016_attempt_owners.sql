-- Several gateways on one database: a callback attempt names the gateway that placed
-- its call ([gateway] name). At its start a gateway settles the calls it left out
-- itself, never the calls of another that is alive; a dead gateway's calls are settled
-- once they can no longer be up (their up_until). NULL: placed before names existed.
ALTER TABLE callback_attempts ADD COLUMN owner TEXT;
