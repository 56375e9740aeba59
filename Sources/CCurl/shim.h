#ifndef DRIFTCHECK_CCURL_SHIM_H
#define DRIFTCHECK_CCURL_SHIM_H
#include <curl/curl.h>

// curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call: one typed
// wrapper per argument type.
static inline CURLcode driftcheck_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode driftcheck_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode driftcheck_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode driftcheck_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}
typedef size_t (*driftcheck_curl_callback)(char *data, size_t size, size_t count, void *context);
static inline CURLcode driftcheck_curl_setopt_callback(CURL *handle, CURLoption option, driftcheck_curl_callback value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode driftcheck_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
// The CA bundle libcurl was built to trust (CURLVERSION_NOW is a macro Swift cannot see).
static inline const char *driftcheck_curl_default_cainfo(void) {
    return curl_version_info(CURLVERSION_NOW)->cainfo;
}
#endif
