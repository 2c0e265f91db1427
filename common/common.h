/*
 * The public header of common/: errors, logging, allocation, checked
 * parsing, caps, the capped dynamic buffer, string lists and small macros.
 * common/ uses nothing else of ours.
 */
#ifndef DD_COMMON_COMMON_H
#define DD_COMMON_COMMON_H

#include "common/alloc.h"
#include "common/dynbuf.h"
#include "common/error.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/parse.h"
#include "common/strlist.h"

#endif
