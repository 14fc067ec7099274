import CTierCacheZstd
import TierCache

/// Wraps a libzstd error result, keeping the library's numeric `ZSTD_ErrorCode` and its name
/// (`ZSTD_getErrorName`) in the message: `zstd: ZSTD_decompressDCtx failed: Data corruption
/// detected (ZSTD_ErrorCode 20)`.
func zstdError(_ result: Int, in function: String) -> TierCacheError {
    let code = ZSTD_getErrorCode(result).rawValue
    let name = String(cString: ZSTD_getErrorName(result))
    return TierCacheError(.codec, "zstd: \(function) failed: \(name) (ZSTD_ErrorCode \(code))")
}

/// Throws ``zstdError(_:in:)`` when `result` is a libzstd error code, else returns it.
@inline(__always)
func checkZstd(_ result: Int, in function: String) throws(TierCacheError) -> Int {
    if ZSTD_isError(result) != 0 { throw zstdError(result, in: function) }
    return result
}

/// Wraps a ZDICT (dictionary builder) error result with its code and name.
func zdictError(_ result: Int, in function: String) -> TierCacheError {
    let name = String(cString: ZDICT_getErrorName(result))
    let code = ZSTD_getErrorCode(result).rawValue
    return TierCacheError(.codec, "zstd: \(function) failed: \(name) (ZSTD_ErrorCode \(code))")
}
