// hello_cxx: the hello plugin written in C++.  It draws a gradient between
// two colours taken from the prompt and hands it to the host as WebP.
//
// What C++ asks of a plugin author:
//  - Nothing for the two exported symbols: <t2istage/plugin.h> declares
//    t2i_plugin and generate_image() inside extern "C", so the definitions
//    below get C linkage and unmangled names without saying so again.
//  - No exception may leave generate_image(): its caller is C.  Everything
//    is caught at that boundary and turned into a t2i_error.
//  - Objects of static storage duration are constructed by dlopen(), before
//    the host has checked the plugin (see the header): keep them trivial.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include <t2istage/plugin.h>
#include <webp/encode.h>

T2I_PLUGIN("hello_cxx", "1.0", "example in C++: a gradient in colours taken from the prompt");

namespace {

constexpr uint32_t side_max = 8192;

// Owns what WebPEncodeRGB() returns.
struct webp_image {
	uint8_t *data = nullptr;
	size_t size = 0;
	webp_image() = default;
	webp_image(const webp_image &) = delete;
	webp_image &operator=(const webp_image &) = delete;
	~webp_image() { WebPFree(data); }
};

struct rgb {
	uint8_t r, g, b;
};

// Two colours from the prompt's bytes: stable from one run to the next.
rgb colour(const std::string &prompt, uint32_t salt)
{
	uint32_t h = salt;
	for (unsigned char c : prompt)
		h = (h ^ c) * 16777619u;
	return { uint8_t(h >> 16), uint8_t(h >> 8), uint8_t(h) };
}

std::vector<uint8_t> gradient(const std::string &prompt, uint32_t w, uint32_t h)
{
	const rgb top = colour(prompt, 2166136261u), bottom = colour(prompt, 33554467u);
	std::vector<uint8_t> px(size_t(w) * h * 3);
	auto mix = [](uint8_t a, uint8_t b, uint32_t y, uint32_t n) {
		return uint8_t((a * (n - 1 - y) + b * y) / (n > 1 ? n - 1 : 1));
	};
	for (uint32_t y = 0; y < h; y++) {
		const rgb c = { mix(top.r, bottom.r, y, h), mix(top.g, bottom.g, y, h),
				mix(top.b, bottom.b, y, h) };
		for (size_t i = size_t(y) * w * 3, end = i + size_t(w) * 3; i < end; i += 3) {
			px[i] = c.r;
			px[i + 1] = c.g;
			px[i + 2] = c.b;
		}
	}
	return px;
}

int fail(t2i_error *err, int error_class, const char *message)
{
	err->error_class = error_class;
	std::snprintf(err->message, sizeof(err->message), "hello_cxx: %s", message);
	return -1;
}

} // namespace

int generate_image(const t2i_request *req, const t2i_host *host, t2i_error *err)
{
	try {
		if (req->width == 0 || req->height == 0 || req->width > side_max ||
		    req->height > side_max)
			return fail(err, T2I_ERR_REJECTED, "size out of range");
		const std::vector<uint8_t> px = gradient(req->prompt, req->width, req->height);
		webp_image out;
		out.size = WebPEncodeRGB(px.data(), int(req->width), int(req->height),
					 int(req->width) * 3, 80, &out.data);
		if (out.size == 0)
			return fail(err, T2I_ERR_TRANSIENT, "WebPEncodeRGB failed");
		if (host->add_image(host->ctx, nullptr, out.data, out.size) != 0)
			return fail(err, T2I_ERR_TRANSIENT, "the host did not store the image");
		return 0;
	} catch (const std::bad_alloc &) {
		return fail(err, T2I_ERR_TRANSIENT, "out of memory");
	} catch (const std::exception &e) {
		return fail(err, T2I_ERR_TRANSIENT, e.what());
	} catch (...) {
		return fail(err, T2I_ERR_TRANSIENT, "unknown exception");
	}
}
