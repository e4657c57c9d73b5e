/*
 * hello: a small t2istage plugin in C.  It makes one image of the requested
 * size, in a colour taken from the prompt, encodes it as WebP with libwebp
 * and hands the bytes to the host, which stores them and reports the image.
 * The Makefile beside it builds it against the installed header.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <t2istage/plugin.h>
#include <webp/encode.h>

/* The data symbol the host checks first: ABI version, size, name. */
T2I_PLUGIN("hello", "1.0", "example: one image in a colour taken from the prompt");

/* WebP's own limit is 16383 pixels a side; this keeps memory modest. */
#define HELLO_SIDE_MAX 8192

static int
hello_fail(struct t2i_error *err, int error_class, const char *message)
{
	err->error_class = error_class;
	snprintf(err->message, sizeof(err->message), "hello: %s", message);
	return -1;
}

/* FNV-1a: the same prompt always gives the same colour. */
static uint32_t
hello_colour(const char *prompt)
{
	uint32_t h = 2166136261u;

	for (; *prompt != '\0'; prompt++)
		h = (h ^ (unsigned char)*prompt) * 16777619u;
	return h;
}

int
generate_image(const struct t2i_request *req, const struct t2i_host *host,
	       struct t2i_error *err)
{
	uint32_t rgb = hello_colour(req->prompt);
	uint8_t *pixels, *webp = NULL;
	size_t n, size;
	int rc;

	/* Members of ABI version 1 are always there; a member added later
	 * would need a look at req->struct_size first. */
	if (req->width == 0 || req->height == 0 || req->width > HELLO_SIDE_MAX ||
	    req->height > HELLO_SIDE_MAX)
		return hello_fail(err, T2I_ERR_REJECTED, "size out of range");
	n = (size_t)req->width * req->height * 3;
	if ((pixels = malloc(n)) == NULL)
		return hello_fail(err, T2I_ERR_TRANSIENT, "out of memory");
	for (size_t i = 0; i < n; i += 3) {
		pixels[i] = (uint8_t)(rgb >> 16);
		pixels[i + 1] = (uint8_t)(rgb >> 8);
		pixels[i + 2] = (uint8_t)rgb;
	}
	size = WebPEncodeRGB(pixels, (int)req->width, (int)req->height, (int)req->width * 3, 80,
			     &webp);
	free(pixels);
	if (size == 0)
		return hello_fail(err, T2I_ERR_TRANSIENT, "WebPEncodeRGB failed");
	host->log(host->ctx, T2I_LOG_INFO, "hello: %ux%u image of %zu bytes for storyboard %u",
		  (unsigned)req->width, (unsigned)req->height, size,
		  (unsigned)req->storyboard_index);
	/* The host has stored the bytes when add_image() returns. */
	rc = host->add_image(host->ctx, NULL, webp, size);
	WebPFree(webp);
	if (rc != 0)
		return hello_fail(err, T2I_ERR_TRANSIENT, "the host did not store the image");
	return 0;
}
