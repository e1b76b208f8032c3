/*
 * kata-monitor: a minimal AF_VSOCK bridge for Node.js (N-API, C).
 *
 * Node has no vsock sockets and libuv cannot wrap an AF_VSOCK descriptor, so connect() here creates the
 * vsock socket, connects it on a detached helper thread and relays bytes between it and one end of an
 * AF_UNIX socketpair. The other end's fd is returned to JavaScript, which wraps it in a net.Socket.
 * The first 4 bytes JavaScript reads are the connect result (big-endian errno, 0 = connected); after
 * that the stream is transparent. Closing the JavaScript socket ends the relay and closes the vsock socket.
 *
 * Exports:
 *   probe()                          throws (err.code = errno name) when socket(AF_VSOCK) fails
 *   connect(cid, port, timeoutMs)    returns the JavaScript end's fd; throws on socket()/socketpair() errors
 */
#define _GNU_SOURCE
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

static const char *errno_name(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENODEV: return "ENODEV";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOMEM: return "ENOMEM";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    default: return "EUNKNOWN";
  }
}

static napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s (%s)", what, strerror(e), errno_name(e));
  napi_throw_error(env, errno_name(e), msg);
  return NULL;
}

struct bridge {
  int vfd;
  int ufd;
  unsigned int cid;
  unsigned int port;
  int timeout_ms;
};

static int write_all(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, 1000);
        continue;
      }
      return -1;
    }
    buf += w;
    n -= (size_t)w;
  }
  return 0;
}

static int do_connect(struct bridge *b) {
  struct sockaddr_vm addr;
  memset(&addr, 0, sizeof addr);
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = b->cid;
  addr.svm_port = b->port;
  if (connect(b->vfd, (struct sockaddr *)&addr, sizeof addr) == 0) return 0;
  if (errno != EINPROGRESS && errno != EINTR) return errno;
  struct pollfd p = {.fd = b->vfd, .events = POLLOUT};
  int r;
  do {
    r = poll(&p, 1, b->timeout_ms);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return ETIMEDOUT;
  if (r < 0) return errno;
  int soerr = 0;
  socklen_t len = sizeof soerr;
  if (getsockopt(b->vfd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) return errno;
  return soerr;
}

static void *relay(void *arg) {
  struct bridge *b = arg;
  int err = do_connect(b);
  unsigned char head[4] = {(unsigned char)(err >> 24), (unsigned char)(err >> 16), (unsigned char)(err >> 8),
                           (unsigned char)err};
  if (write_all(b->ufd, (const char *)head, 4) < 0 || err != 0) goto done;

  char buf[65536];
  int open_v = 1, open_u = 1; /* directions still open: vsock→unix, unix→vsock */
  while (open_v || open_u) {
    struct pollfd p[2] = {{.fd = open_v ? b->vfd : -1, .events = POLLIN},
                          {.fd = open_u ? b->ufd : -1, .events = POLLIN}};
    int r = poll(p, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = recv(b->vfd, buf, sizeof buf, 0);
      if (n > 0) {
        if (write_all(b->ufd, buf, (size_t)n) < 0) break;
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        open_v = 0;
        shutdown(b->ufd, SHUT_WR);
        if (n < 0) break;
      }
    }
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = recv(b->ufd, buf, sizeof buf, 0);
      if (n > 0) {
        if (write_all(b->vfd, buf, (size_t)n) < 0) break;
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        /* JavaScript closed its end: nobody is left to read, end both directions. */
        break;
      }
    }
  }
done:
  close(b->vfd);
  close(b->ufd);
  free(b);
  return NULL;
}

static napi_value probe(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket(AF_VSOCK)", errno);
  close(fd);
  return NULL;
}

static napi_value vconnect(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) {
    napi_throw_type_error(env, "EINVAL", "connect(cid, port, timeoutMs) needs three numbers");
    return NULL;
  }
  uint32_t cid, port;
  int32_t timeout;
  if (napi_get_value_uint32(env, argv[0], &cid) != napi_ok || napi_get_value_uint32(env, argv[1], &port) != napi_ok ||
      napi_get_value_int32(env, argv[2], &timeout) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "connect(cid, port, timeoutMs) needs three numbers");
    return NULL;
  }
  int vfd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (vfd < 0) return throw_errno(env, "socket(AF_VSOCK)", errno);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    int e = errno;
    close(vfd);
    return throw_errno(env, "socketpair", e);
  }
  struct bridge *b = malloc(sizeof *b);
  if (!b) {
    close(vfd);
    close(sv[0]);
    close(sv[1]);
    return throw_errno(env, "malloc", ENOMEM);
  }
  b->vfd = vfd;
  b->ufd = sv[1];
  b->cid = cid;
  b->port = port;
  b->timeout_ms = timeout > 0 ? timeout : 1;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  int e = pthread_create(&t, &attr, relay, b);
  pthread_attr_destroy(&attr);
  if (e != 0) {
    close(vfd);
    close(sv[0]);
    close(sv[1]);
    free(b);
    return throw_errno(env, "pthread_create", e);
  }
  napi_value out;
  napi_create_int32(env, sv[0], &out);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"probe", NULL, probe, NULL, NULL, NULL, napi_default, NULL},
      {"connect", NULL, vconnect, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
