/*
 * fuzz_config.c: libFuzzer harness for the config loader (config.c over
 * libconfig). The input is a config file; it is handed to config_load
 * through a memfd, so no file is written. Whatever the input, the loader
 * must return 0 or AERR_CONFIG, and leave nothing allocated after
 * config_free.
 */
#include "agent.h"
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	struct config cfg;
	int fd = memfd_create("fuzz-config", MFD_CLOEXEC), rc;

	if (fd == -1)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	unsetenv("CHECKPOINT_DB_URI");
	rc = config_load(path, true, &cfg);
	if (rc != 0 && rc != AERR_CONFIG)
		abort();
	if (rc == 0 && (cfg.nsets == 0 || cfg.uri == NULL || cfg.checks.query_warn_ms > cfg.checks.query_crit_ms))
		abort();
	config_free(&cfg);
	close(fd);
	return 0;
}
