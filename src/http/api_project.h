/* api_project: the routes of projects, their storyboards and images. */
#ifndef T2I_API_PROJECT_H
#define T2I_API_PROJECT_H

#include "api_req.h"

api_fn api_project_post;		/* POST /v1/projects */
api_fn api_project_list;		/* GET /v1/projects?limit=&after= */
api_fn api_project_get;			/* GET /v1/projects/{id} */
api_fn api_project_delete;		/* DELETE /v1/projects/{id} */
api_fn api_project_images;		/* GET /v1/projects/{id}/images */
api_fn api_project_patch_storyboard;	/* PATCH /v1/projects/{id}/storyboards/{sid} */

#endif
