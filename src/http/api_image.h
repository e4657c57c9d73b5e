/* api_image: one generated image: its metadata, its file, its thumbnail. */
#ifndef T2I_API_IMAGE_H
#define T2I_API_IMAGE_H

#include "api_req.h"

api_fn api_image_get;		/* GET /v1/images/{id} */
api_fn api_image_file;		/* GET /v1/images/{id}/file */
api_fn api_image_thumbnail;	/* GET /v1/images/{id}/thumbnail */

#endif
