/* mhd: libmicrohttpd, loaded by `serve` only.
 *
 * Why not link it: libmicrohttpd brings gnutls and eight more libraries,
 * whose constructors (p11-kit reading its module configuration among them)
 * cost every start of the binary ~6 ms, measured, and whose mappings every
 * spawner, template and worker image carried into each fork().  Only the
 * service speaks HTTP, so it dlopen()s the library at start and the rest
 * of the program never maps it.
 *
 * The HTTP files include this header instead of <microhttpd.h>: the
 * functions they call are macros for pointers filled by mhd_load(), with
 * the library's own prototypes (taken with __typeof__). */
#ifndef T2I_MHD_H
#define T2I_MHD_H

#include <stddef.h>

#include <microhttpd.h>

struct mhd_api {
	__typeof__(&MHD_start_daemon) start_daemon;
	__typeof__(&MHD_stop_daemon) stop_daemon;
	__typeof__(&MHD_quiesce_daemon) quiesce_daemon;
	__typeof__(&MHD_run) run;
	__typeof__(&MHD_get_timeout) get_timeout;
	__typeof__(&MHD_get_daemon_info) get_daemon_info;
	__typeof__(&MHD_lookup_connection_value) lookup_connection_value;
	__typeof__(&MHD_get_connection_values_n) get_connection_values_n;
	__typeof__(&MHD_get_connection_info) get_connection_info;
	__typeof__(&MHD_set_connection_option) set_connection_option;
	__typeof__(&MHD_add_connection) add_connection;
	__typeof__(&MHD_suspend_connection) suspend_connection;
	__typeof__(&MHD_resume_connection) resume_connection;
	__typeof__(&MHD_create_response_from_buffer) create_response_from_buffer;
	__typeof__(&MHD_create_response_from_callback) create_response_from_callback;
	__typeof__(&MHD_create_response_from_fd64) create_response_from_fd64;
	__typeof__(&MHD_add_response_header) add_response_header;
	__typeof__(&MHD_queue_response) queue_response;
	__typeof__(&MHD_destroy_response) destroy_response;
};

extern struct mhd_api mhd;

/* Loads the library and resolves every function above, once.  0, or -1
 * with the loader's reason in err. */
int mhd_load(char *err, size_t errlen);

#define MHD_start_daemon mhd.start_daemon
#define MHD_stop_daemon mhd.stop_daemon
#define MHD_quiesce_daemon mhd.quiesce_daemon
#define MHD_run mhd.run
#define MHD_get_timeout mhd.get_timeout
#define MHD_get_daemon_info mhd.get_daemon_info
#define MHD_lookup_connection_value mhd.lookup_connection_value
#define MHD_get_connection_values_n mhd.get_connection_values_n
#define MHD_get_connection_info mhd.get_connection_info
#define MHD_set_connection_option mhd.set_connection_option
#define MHD_add_connection mhd.add_connection
#define MHD_suspend_connection mhd.suspend_connection
#define MHD_resume_connection mhd.resume_connection
#define MHD_create_response_from_buffer mhd.create_response_from_buffer
#define MHD_create_response_from_callback mhd.create_response_from_callback
#define MHD_create_response_from_fd64 mhd.create_response_from_fd64
#define MHD_add_response_header mhd.add_response_header
#define MHD_queue_response mhd.queue_response
#define MHD_destroy_response mhd.destroy_response

#endif
