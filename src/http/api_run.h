/* api_run: the routes of runs: start, cancel, list, one run, and the SSE
 * streams of their events. */
#ifndef T2I_API_RUN_H
#define T2I_API_RUN_H

#include "api_req.h"

api_fn api_run_start;		/* POST /v1/projects/{id}/image-generation */
api_fn api_run_latest_events;	/* GET .../image-generation/events */
api_fn api_run_cancel;		/* POST .../image-generation/cancel */
api_fn api_run_list;		/* GET /v1/projects/{id}/runs */
api_fn api_run_get;		/* GET /v1/runs/{id} */
api_fn api_run_events;		/* GET /v1/runs/{id}/events */

#endif
