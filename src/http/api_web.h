/* api_web: the dashboard, its page and its files (webasset.h). */
#ifndef T2I_API_WEB_H
#define T2I_API_WEB_H

#include "api_req.h"

api_fn api_web_index;	/* GET / */
api_fn api_web_file;	/* GET /ui/NAME */
api_fn api_web_service;	/* GET /ui/service.json */

#endif
