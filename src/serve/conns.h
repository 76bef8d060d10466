/* The HTTP front end's connections (rank 0) and an absolute deadline for each request to
 * arrive. libmicrohttpd's --timeout is an inactivity timeout: a client that sends one header
 * line every few seconds keeps its connection, and its thread, forever, so a few hundred such
 * clients held every slot and no one else was served. Here each connection is tracked from
 * libmicrohttpd's connection notifications; a sweeper thread shuts down the socket of any
 * connection whose request (headers and body) has not fully arrived `deadline` seconds after
 * the connection opened or its previous request ended. libmicrohttpd's connection thread then
 * sees the end of the stream and closes the connection itself. (Its close notification comes
 * before it closes the socket, and both take this module's lock, so the sweeper never touches
 * a descriptor that was closed and reused.) */
#pragma once
#include <microhttpd.h>

#include "serve/loglimit.h"

typedef struct serve_conns serve_conns;

/* Starts the sweeper (deadline > 0 seconds). It logs the connections it cuts, at most a few
 * lines a minute. NULL when out of memory or the thread cannot start. */
serve_conns *serve_conns_start(double deadline);
/* Stops the sweeper (after libmicrohttpd has stopped: no connection is left) and frees. */
void serve_conns_stop(serve_conns *t);
/* MHD_OPTION_NOTIFY_CONNECTION's callback (cls: the serve_conns). */
void serve_conns_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode code);
/* The request on c has fully arrived (1): no deadline while it is answered; or its exchange is
 * over (0): the next request's deadline starts now. */
void serve_conns_arrived(serve_conns *t, struct MHD_Connection *c, int arrived);
/* Connections cut by the deadline so far. */
unsigned long serve_conns_cut(serve_conns *t);
