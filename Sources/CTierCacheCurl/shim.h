// Typed wrappers for libcurl's variadic functions, so Swift can call them.
//
// `curl_easy_setopt`, `curl_easy_getinfo` and `curl_multi_setopt` are C variadics that Swift
// cannot import; each wrapper below fixes the type of the third argument. The argument type must
// match what libcurl expects for the option (long, pointer, string, callback or curl_off_t), as
// documented on each option's man page. Only TierCacheHTTP imports this module.
#ifndef CTIERCACHECURL_SHIM_H
#define CTIERCACHECURL_SHIM_H

#include <curl/curl.h>

// MARK: Callback types

/// CURLOPT_WRITEFUNCTION / CURLOPT_HEADERFUNCTION / CURLOPT_READFUNCTION signature.
typedef size_t (*CTierCacheCurl_data_callback)(char *buffer, size_t size, size_t count, void *userdata);
/// CURLOPT_SEEKFUNCTION signature.
typedef int (*CTierCacheCurl_seek_callback)(void *userdata, curl_off_t offset, int origin);
/// CURLOPT_XFERINFOFUNCTION signature.
typedef int (*CTierCacheCurl_xferinfo_callback)(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
                                                curl_off_t ultotal, curl_off_t ulnow);

// MARK: Global

/// curl_global_init(CURL_GLOBAL_ALL); call once per process.
static inline CURLcode CTierCacheCurl_global_init_all(void) {
    return curl_global_init(CURL_GLOBAL_ALL);
}

// MARK: curl_easy_setopt

static inline CURLcode CTierCacheCurl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode CTierCacheCurl_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode CTierCacheCurl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode CTierCacheCurl_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode CTierCacheCurl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode CTierCacheCurl_easy_setopt_data_callback(CURL *handle, CURLoption option,
                                                                CTierCacheCurl_data_callback value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode CTierCacheCurl_easy_setopt_seek_callback(CURL *handle, CURLoption option,
                                                                CTierCacheCurl_seek_callback value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode CTierCacheCurl_easy_setopt_xferinfo_callback(CURL *handle, CURLoption option,
                                                                    CTierCacheCurl_xferinfo_callback value) {
    return curl_easy_setopt(handle, option, value);
}

// MARK: curl_easy_getinfo

static inline CURLcode CTierCacheCurl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode CTierCacheCurl_easy_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode CTierCacheCurl_easy_getinfo_double(CURL *handle, CURLINFO info, double *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode CTierCacheCurl_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode CTierCacheCurl_easy_getinfo_string(CURL *handle, CURLINFO info, const char **value) {
    return curl_easy_getinfo(handle, info, value);
}

// MARK: curl_multi_setopt

static inline CURLMcode CTierCacheCurl_multi_setopt_long(CURLM *handle, CURLMoption option, long value) {
    return curl_multi_setopt(handle, option, value);
}

static inline CURLMcode CTierCacheCurl_multi_setopt_pointer(CURLM *handle, CURLMoption option, void *value) {
    return curl_multi_setopt(handle, option, value);
}

// MARK: CURLMsg

/// The result of a CURLMSG_DONE message (a union member Swift reads awkwardly).
static inline CURLcode CTierCacheCurl_msg_result(const CURLMsg *message) {
    return message->data.result;
}

/// Whether a message is CURLMSG_DONE.
static inline int CTierCacheCurl_msg_is_done(const CURLMsg *message) {
    return message->msg == CURLMSG_DONE;
}

// MARK: Constants that are macros or need a fixed type

/// CURL_READFUNC_ABORT as a size_t.
static inline size_t CTierCacheCurl_readfunc_abort(void) { return CURL_READFUNC_ABORT; }
/// CURL_SEEKFUNC_OK / CURL_SEEKFUNC_FAIL / CURL_SEEKFUNC_CANTSEEK.
static inline int CTierCacheCurl_seekfunc_ok(void) { return CURL_SEEKFUNC_OK; }
static inline int CTierCacheCurl_seekfunc_fail(void) { return CURL_SEEKFUNC_FAIL; }
/// CURL_HTTP_VERSION_1_1 as a long.
static inline long CTierCacheCurl_http_version_1_1(void) { return (long)CURL_HTTP_VERSION_1_1; }
/// CURL_ERROR_SIZE: the size of a CURLOPT_ERRORBUFFER.
static inline size_t CTierCacheCurl_error_size(void) { return CURL_ERROR_SIZE; }

#endif
