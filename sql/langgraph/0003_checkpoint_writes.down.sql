-- langgraph v3 down. The agent quarantines the table instead when it holds rows.
DROP TABLE IF EXISTS checkpoint_writes;
