/*
** resolve.c: a shim the remote-port specs preload into a peer process
** (spec/21-remote_spec.lua): the host name "mc-two-addresses.test"
** resolves to ::1, then 127.0.0.1, as "localhost" does on many systems,
** whatever the system's resolver says. Every other name goes to the real
** getaddrinfo. Built by the Makefile as build/test/resolve.so.
*/
#define _GNU_SOURCE  /* RTLD_NEXT */
#include <dlfcn.h>
#include <netdb.h>
#include <string.h>

typedef int (*Resolver) (const char *, const char *, const struct addrinfo *,
                         struct addrinfo **);

int getaddrinfo (const char *node, const char *service,
                 const struct addrinfo *hints, struct addrinfo **res) {
  Resolver real = (Resolver)(size_t)dlsym(RTLD_NEXT, "getaddrinfo");
  struct addrinfo *v6 = NULL, *v4 = NULL, *p;
  int rc;
  if (node == NULL || strcmp(node, "mc-two-addresses.test") != 0)
    return real(node, service, hints, res);
  if (real("::1", service, hints, &v6) != 0)
    v6 = NULL;
  rc = real("127.0.0.1", service, hints, &v4);
  if (rc != 0) {
    if (v6 != NULL)
      freeaddrinfo(v6);
    return rc;
  }
  if (v6 == NULL) {
    *res = v4;
    return 0;
  }
  for (p = v6; p->ai_next != NULL; p = p->ai_next)
    ;
  p->ai_next = v4;  /* freeaddrinfo frees the entries one by one */
  *res = v6;
  return 0;
}
