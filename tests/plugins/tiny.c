/*
 * tiny: for the benchmark, which measures t2istage's own overhead per
 * storyboard.  Returns an 8x8 PNG at once, coloured by the prompt hash so
 * each storyboard's bytes differ (and the cache cannot hide work); no trace
 * and no option parsing, so that the plugin costs next to nothing.
 */
#include <stdlib.h>

#include "common.h"

T2I_PLUGIN("tiny", "1.0", "test: instant 8x8 image for benchmarks");

int generate_image(const struct t2i_request *req, const struct t2i_host *host,
		   struct t2i_error *err)
{
	unsigned char *png;
	size_t len;
	int rc;

	if (!tp_req_valid(req) || host == NULL || host->add_image == NULL) {
		tp_err(err, T2I_ERR_REJECTED, 0, "tiny: request or host struct too small");
		return -1;
	}
	if (tp_png(8, 8, tp_hash(req->prompt), &png, &len) != 0) {
		tp_err(err, T2I_ERR_TRANSIENT, 0, "tiny: out of memory");
		return -1;
	}
	rc = host->add_image(host->ctx, NULL, png, len);
	free(png);
	if (rc != 0)
		tp_err(err, T2I_ERR_TRANSIENT, 0, "tiny: host refused the image");
	return rc != 0 ? -1 : 0;
}
