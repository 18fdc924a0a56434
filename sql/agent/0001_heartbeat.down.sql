-- agent v1 down.
DROP TABLE IF EXISTS heartbeat;
