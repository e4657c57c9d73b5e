/*
 * webembed: writes the dashboard's files (web/) into a C file, the table
 * of src/http/webasset.h, so that the binary serves them with nothing read
 * or fetched at run time.  Each file becomes a byte array with its length,
 * its Content-Type (from the extension) and an ETag (the first 128 bits of
 * its SHA-256, in hex).
 *
 *   webembed -o OUT.c web/index.html web/dashboard.js ...
 *
 * The output depends on the files' names and bytes alone (no time, no
 * directory), in the order given: the Makefile passes them sorted, so the
 * same tree always gives the same file.  Built and run on the build
 * machine; it is no part of the binary.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/sha2.h>

#define WEBEMBED_MAX (4u << 20)	/* a dashboard file larger than this is a mistake */

struct file {
	const char *path;
	const char *name;	/* the base name: what the table is searched by */
	const char *type;
	unsigned char *data;
	size_t len;
	char etag[33];		/* 32 hex digits; the ETag is them in quotes */
};

static const char *
type_of(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".svg", "image/svg+xml" },
		{ ".json", "application/json" },
	};
	const char *dot = strrchr(name, '.');

	for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return NULL;
}

static int
read_file(struct file *f)
{
	FILE *fp = fopen(f->path, "rb");
	size_t cap = 65536, n;

	if (fp == NULL) {
		fprintf(stderr, "webembed: fopen %s: %s\n", f->path, strerror(errno));
		return -1;
	}
	f->len = 0;
	f->data = malloc(cap);
	while (f->data != NULL && (n = fread(f->data + f->len, 1, cap - f->len, fp)) > 0) {
		f->len += n;
		if (f->len > WEBEMBED_MAX)
			break;
		if (f->len == cap) {
			unsigned char *p = realloc(f->data, cap *= 2);

			if (p == NULL)
				free(f->data);
			f->data = p;
		}
	}
	if (f->data == NULL || ferror(fp) || f->len > WEBEMBED_MAX) {
		fprintf(stderr, "webembed: %s: %s\n", f->path,
			f->data == NULL ? "out of memory"
			: ferror(fp)	? "read error"
					: "larger than 4 MiB");
		fclose(fp);
		return -1;
	}
	fclose(fp);
	return 0;
}

static void
etag_of(struct file *f)
{
	struct sha256_ctx ctx;
	uint8_t d[SHA256_DIGEST_SIZE];

	sha256_init(&ctx);
	sha256_update(&ctx, f->len, f->data);
	sha256_digest(&ctx, sizeof(d), d);
	for (int i = 0; i < 16; i++)
		snprintf(f->etag + 2 * i, 3, "%02x", d[i]);
}

static int
load(struct file *f, const char *path)
{
	const char *slash = strrchr(path, '/');

	f->path = path;
	f->name = slash != NULL ? slash + 1 : path;
	if ((f->type = type_of(f->name)) == NULL) {
		fprintf(stderr, "webembed: %s: no known type for its extension\n", path);
		return -1;
	}
	/* The name goes into a C string and a URL path as it is. */
	for (const char *c = f->name; *c != '\0'; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' ||
		      *c == '-' || *c == '_')) {
			fprintf(stderr, "webembed: %s: name must be [a-z0-9._-]\n", path);
			return -1;
		}
	}
	if (read_file(f) < 0)
		return -1;
	etag_of(f);
	return 0;
}

static void
write_bytes(FILE *out, const struct file *f, int k)
{
	fprintf(out, "/* %s */\nstatic const unsigned char file%d[%zu] = {", f->name, k,
		f->len + 1);
	for (size_t i = 0; i < f->len; i++)
		fprintf(out, "%s%u,", i % 16 == 0 ? "\n\t" : "", f->data[i]);
	/* A NUL after the bytes (not counted in len): the text can be read as
	 * a C string by a test. */
	fprintf(out, "%s0\n};\n\n", f->len % 16 == 0 ? "\n\t" : "");
}

static int
write_all(FILE *out, const struct file *files, int n)
{
	fprintf(out, "/* Written by tools/webembed from web/: do not edit. */\n"
		     "#include \"webasset.h\"\n\n");
	for (int k = 0; k < n; k++)
		write_bytes(out, &files[k], k);
	fprintf(out, "const struct webasset webasset_table[] = {\n");
	for (int k = 0; k < n; k++)
		fprintf(out, "\t{ \"%s\", \"%s\", file%d, %zu, \"\\\"%s\\\"\" },\n", files[k].name,
			files[k].type, k, files[k].len, files[k].etag);
	fprintf(out, "};\n\nconst size_t webasset_count = %d;\n", n);
	return ferror(out) ? -1 : 0;
}

int
main(int argc, char **argv)
{
	struct file *files;
	const char *outpath;
	char tmp[4096];
	FILE *out;
	int n = argc - 3, rc = 1;

	if (argc < 4 || strcmp(argv[1], "-o") != 0) {
		fprintf(stderr, "usage: webembed -o OUT.c FILE...\n");
		return 2;
	}
	outpath = argv[2];
	if ((files = calloc((size_t)n, sizeof(*files))) == NULL)
		return 1;
	for (int k = 0; k < n; k++)
		if (load(&files[k], argv[3 + k]) < 0)
			goto done;
	/* Written beside and renamed: an interrupted build leaves no half file
	 * that make would take as up to date. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", outpath);
	if ((out = fopen(tmp, "w")) == NULL) {
		fprintf(stderr, "webembed: fopen %s: %s\n", tmp, strerror(errno));
		goto done;
	}
	if (write_all(out, files, n) < 0 || fclose(out) != 0) {
		fprintf(stderr, "webembed: write %s: %s\n", tmp, strerror(errno));
		remove(tmp);
		goto done;
	}
	if (rename(tmp, outpath) != 0) {
		fprintf(stderr, "webembed: rename %s: %s\n", tmp, strerror(errno));
		goto done;
	}
	rc = 0;
done:
	for (int k = 0; k < n; k++)
		free(files[k].data);
	free(files);
	return rc;
}
