-- langgraph v2 down. The agent quarantines the table instead when it holds rows.
DROP TABLE IF EXISTS checkpoint_blobs;
