DROP TABLE IF EXISTS public.checkpoints, "A"."b""c" CASCADE; SELECT E'x\';y', $f$;$f$ /* a /* b */ ; */;
CREATE INDEX
CONCURRENTLY i ON t(a);
