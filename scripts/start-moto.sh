#!/usr/bin/env bash
# Starts moto's S3/IAM server on loopback with SigV4 verification on, for the S3 tests.
#
# SOURCED by scripts/test.sh (which kills $MOTO_PID at exit); can also be sourced by hand:
#   source scripts/start-moto.sh && swift test --filter TierCacheS3Tests; kill $MOTO_PID
# Exports MOTO_PID, TIERCACHE_TEST_S3_ENDPOINT, TIERCACHE_TEST_ACCESS_KEY_ID and
# TIERCACHE_TEST_SECRET_ACCESS_KEY. moto lets the first INITIAL_NO_AUTH_ACTION_COUNT requests
# through unauthenticated: exactly the four IAM calls below that create a user and its key; every
# request after them must be signed by that key.
# Not `set -e` here: this file runs inside the caller's shell.

_moto_start() {
    local port log i
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    log=$(mktemp -t moto.XXXXXX.log)
    INITIAL_NO_AUTH_ACTION_COUNT=4 python3 -m moto.server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
    MOTO_PID=$!
    export MOTO_PID
    for i in $(seq 1 150); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then break; fi
        if ! kill -0 "$MOTO_PID" 2>/dev/null; then
            echo "start-moto: moto exited; its log:" >&2; cat "$log" >&2; return 1
        fi
        sleep 0.2
    done
    local endpoint="http://127.0.0.1:$port"
    # Four unauthenticated calls, with dummy credentials for the CLI itself.
    local -a aws=(env -u AWS_PROFILE -u AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID=bootstrap AWS_SECRET_ACCESS_KEY=bootstrap
        AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
        aws --endpoint-url "$endpoint" --output text)
    "${aws[@]}" iam create-user --user-name cache >/dev/null || return 1
    local policy_arn
    policy_arn=$("${aws[@]}" iam create-policy --policy-name s3all --query Policy.Arn \
        --policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}') || return 1
    "${aws[@]}" iam attach-user-policy --user-name cache --policy-arn "$policy_arn" || return 1
    local key
    key=$("${aws[@]}" iam create-access-key --user-name cache \
        --query 'AccessKey.[AccessKeyId,SecretAccessKey]') || return 1
    TIERCACHE_TEST_ACCESS_KEY_ID=$(echo "$key" | awk '{print $1}')
    TIERCACHE_TEST_SECRET_ACCESS_KEY=$(echo "$key" | awk '{print $2}')
    TIERCACHE_TEST_S3_ENDPOINT=$endpoint
    export TIERCACHE_TEST_S3_ENDPOINT TIERCACHE_TEST_ACCESS_KEY_ID TIERCACHE_TEST_SECRET_ACCESS_KEY
    echo "start-moto: moto (pid $MOTO_PID) on $endpoint with SigV4 checking on; log $log"
}

_moto_start || echo "start-moto: could not start moto; S3 tests that need it will skip" >&2
unset -f _moto_start
