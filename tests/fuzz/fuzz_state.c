/*
 * fuzz_state.c: libFuzzer harness for the state file reader (state.c). The
 * input is a state file, read through a memfd; the samples read are written
 * back to a file in a private folder under /dev/shm and read again, which
 * must give the same number of samples (keys are sanitized on the way out).
 */
#include "check.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static const char *scratch_dir(void)
{
	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/dev/shm/cpa-fuzz-XXXXXX");
		if (mkdtemp(dir) == NULL)
			snprintf(dir, sizeof(dir), "/tmp");
	}
	return dir;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct size_state st = { NULL, 0, 0, false }, again = { NULL, 0, 0, false };
	char path[64], out[96], *why = NULL;
	int fd = memfd_create("fuzz-state", MFD_CLOEXEC);

	if (fd == -1)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (state_read(path, &st, &why) != 0 && why == NULL)
		abort();
	free(why);
	why = NULL;
	snprintf(out, sizeof(out), "%s/state", scratch_dir());
	if (state_write(out, &st, &why) == 0) {
		if (state_read(out, &again, &why) != 0 || again.n > st.n)
			abort();
	}
	free(why);
	state_free(&st);
	state_free(&again);
	close(fd);
	return 0;
}
