/*
** resolve.c: a shim the remote-port specs preload into a peer process
** (spec/21-remote_spec.lua): the host name "mc-two-addresses.test"
** resolves to ::1, then 127.0.0.1, as "localhost" does on many systems,
** whatever the system's resolver says; "mc-silent-first.test" to
** 127.0.0.2, then 127.0.0.1 (spec/regress/connect-timeout-next-address).
** Every other name goes to the real getaddrinfo. Built by the Makefile as
** build/test/resolve.so.
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
  struct addrinfo *head = NULL, *tail = NULL, *p;
  const char *first;
  int rc;
  if (node != NULL && strcmp(node, "mc-two-addresses.test") == 0)
    first = "::1";
  else if (node != NULL && strcmp(node, "mc-silent-first.test") == 0)
    first = "127.0.0.2";
  else
    return real(node, service, hints, res);
  if (real(first, service, hints, &head) != 0)
    head = NULL;
  rc = real("127.0.0.1", service, hints, &tail);
  if (rc != 0) {
    if (head != NULL)
      freeaddrinfo(head);
    return rc;
  }
  if (head == NULL) {
    *res = tail;
    return 0;
  }
  for (p = head; p->ai_next != NULL; p = p->ai_next)
    ;
  p->ai_next = tail;  /* freeaddrinfo frees the entries one by one */
  *res = head;
  return 0;
}
