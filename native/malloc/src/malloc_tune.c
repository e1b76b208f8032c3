/*
 * kata-monitor's malloc tuning: one call, setMmapThreshold(bytes), that asks glibc to serve allocations of
 * at least `bytes` with their own mappings (mallopt M_MMAP_THRESHOLD) instead of its main heap. Shim bodies
 * (tens of KB, pooled) then stop fragmenting that heap (src/malloc-tuning.ts, docs/performance.md).
 * Returns true when the C library took the setting, false elsewhere (musl, other libcs).
 */
#include <node_api.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static napi_value SetMmapThreshold(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t bytes = 0;
  bool ok = false;
  napi_value result;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &bytes) != napi_ok || bytes <= 0) {
    napi_throw_type_error(env, NULL, "setMmapThreshold(bytes): a positive integer is required");
    return NULL;
  }
#if defined(__GLIBC__)
  ok = mallopt(M_MMAP_THRESHOLD, bytes) == 1;
#endif
  napi_get_boolean(env, ok, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "setMmapThreshold", NAPI_AUTO_LENGTH, SetMmapThreshold, NULL, &fn) != napi_ok)
    return NULL;
  if (napi_set_named_property(env, exports, "setMmapThreshold", fn) != napi_ok) return NULL;
  return exports;
}
