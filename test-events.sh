#!/usr/bin/env bash
# The platform's event communication test, through the gateway only.
#
# Creates a menu, activates it, books a reservation that pre-orders one of its
# items, marks that item unavailable, confirms the reservation, and checks
# that every expected event is on menu-events / reservation-events with the
# right type, aggregate_id and correlation_id (the X-Request-Id of the
# request that caused it), that consumer group reservation-service has
# nothing pending, and that the reservation shows the problem. Then it
# stocks the risotto (an ingredient, a recipe, a receipt), places an order
# that the saga approves over the inventory and the kitchen, walks its ticket
# through the kitchen to the pass and completes it, and places one the stock
# cannot cover, which is rejected naming the shortage: each event on its
# stream with the request id that started it.
#
# Needs a running platform (scripts/run), curl, python3 and redis-cli.
#   GATEWAY_URL   default http://127.0.0.1:8080
#   REDIS_HOST    default 127.0.0.1, REDIS_PORT default 6379, REDIS_DB default 0
#                 and REDIS_PASSWORD: the Redis the services use
#   STREAM_PREFIX default empty (as the services' STREAM_PREFIX)
#   STAFF_TOKEN   the bearer token of the staff calls (menus, confirming);
#                 default .run/staff-token as scripts/run leaves it, else one
#                 minted by platform-ctl from the key pair of `auth init`
# Exits non-zero at the first failed check.
set -euo pipefail

gateway=${GATEWAY_URL:-http://127.0.0.1:8080}
redis=(redis-cli -h "${REDIS_HOST:-127.0.0.1}" -p "${REDIS_PORT:-6379}" -n "${REDIS_DB:-0}")
if [ -n "${REDIS_PASSWORD:-}" ]; then redis+=(-a "$REDIS_PASSWORD" --no-auth-warning); fi
menu_stream="${STREAM_PREFIX:-}menu-events"
reservation_stream="${STREAM_PREFIX:-}reservation-events"
inventory_stream="${STREAM_PREFIX:-}inventory-events"
kitchen_stream="${STREAM_PREFIX:-}kitchen-events"
order_stream="${STREAM_PREFIX:-}order-events"
run_id="test-events-$(date +%s)-$$"
step=0

say() { step=$((step + 1)); printf '%2d. %s\n' "$step" "$*"; }
pass() { printf '    ok: %s\n' "$*"; }
fail() { printf '    FAILED: %s\n' "$*" >&2; exit 1; }

# json FIELD: reads JSON on stdin and prints FIELD (a Python expression on `d`).
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

# request METHOD PATH REQUEST_ID [BODY [WHO]]: sends it as staff (as a guest
# with WHO=guest), leaves the response body in $tmp/body, prints the status.
request() {
  local method=$1 path=$2 request_id=$3 body=${4:-} who=${5:-staff}
  local args=(-s -o "$tmp/body" -w '%{http_code}' -X "$method" -H "x-request-id: $request_id")
  [ "$who" = staff ] && args+=(-H "authorization: Bearer $token")
  [ -n "$body" ] && args+=(-H 'content-type: application/json' -d "$body")
  curl "${args[@]}" "$gateway$path" || fail "$method $path: no answer from $gateway"
}

# call METHOD PATH REQUEST_ID [BODY]: as staff, prints the response body; fails unless 2xx.
call() {
  local status
  status=$(request "$@")
  [[ $status == 2* ]] || fail "$1 $2 answered $status: $(cat "$tmp/body")"
  cat "$tmp/body"
}

# call_caught_up METHOD PATH REQUEST_ID BODY [WHO]: as `request`, repeated for up
# to 5 s while it answers 422 (a service whose view of another's events has not
# caught up yet refuses what it does not know of); prints the 2xx body.
call_caught_up() {
  local status
  for _ in $(seq 1 50); do
    status=$(request "$@")
    [ "$status" = 422 ] || break
    sleep 0.1
  done
  [[ $status == 2* ]] || fail "$1 $2 answered $status: $(cat "$tmp/body")"
  cat "$tmp/body"
}

# expect_event STREAM TYPE AGGREGATE_ID CORRELATION_ID: waits up to 5 s for the entry.
expect_event() {
  local stream=$1 type=$2 aggregate=$3 correlation=$4
  for _ in $(seq 1 50); do
    if "${redis[@]}" --json XRANGE "$stream" - + | python3 -c '
import json, sys
event_type, aggregate, correlation = sys.argv[1:4]
for _, flat in json.load(sys.stdin):
    fields = dict(zip(flat[::2], flat[1::2]))
    if (fields.get("type") == event_type and fields.get("aggregate_id") == aggregate
            and json.loads(fields.get("metadata", "{}")).get("correlation_id") == correlation):
        sys.exit(0)
sys.exit(1)' "$type" "$aggregate" "$correlation" 2>/dev/null; then
      pass "$stream has $type for $aggregate, correlation_id $correlation"
      return 0
    fi
    sleep 0.1
  done
  fail "$stream has no $type for $aggregate with correlation_id $correlation"
}

# The staff token: given, left by scripts/run, or minted with every scope.
root=$(cd "$(dirname "$0")" && pwd)
token=${STAFF_TOKEN:-}
if [ -z "$token" ] && [ -s "$root/.run/staff-token" ]; then token=$(cat "$root/.run/staff-token"); fi
if [ -z "$token" ]; then
  for ctl in "$root/target/release/platform-ctl" "$root/target/debug/platform-ctl" "$(command -v platform-ctl || true)"; do
    if [ -x "$ctl" ]; then token=$("$ctl" token --all-scopes --subject test-events --ttl 10m) && break; fi
  done
fi
[ -n "$token" ] || fail "no staff token: set STAFF_TOKEN, or run scripts/run (or platform-ctl auth init) first"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say "the gateway and every service are ready"
curl -fs "$gateway/ready" >/dev/null || fail "$gateway/ready is not 200: $(curl -s "$gateway/ready")"
pass "$gateway/ready"

say "create a menu with two items"
menu=$(call POST /api/v1/menus "$run_id-create" '{"name":"Test events","items":[
  {"name":"Tomato soup","category":"starter","price_cents":650,"currency":"EUR"},
  {"name":"Risotto","category":"main","price_cents":1450,"currency":"EUR"}]}')
menu_id=$(echo "$menu" | json 'd["id"]')
item_id=$(echo "$menu" | json 'd["items"][0]["id"]')
pass "menu $menu_id, item $item_id"

say "activate the menu"
call POST "/api/v1/menus/$menu_id/activate" "$run_id-activate" >/dev/null
pass "active"

say "book a reservation that pre-orders the soup"
starts_at=$(python3 -c 'import datetime as d; t = d.datetime.now(d.timezone.utc) + d.timedelta(days=2); print(t.strftime("%Y-%m-%dT19:00:00Z"))')
booking="{\"guest_name\":\"Ada Lovelace\",\"guest_email\":\"ada@example.com\",\"party_size\":2,\"starts_at\":\"$starts_at\",\"pre_order\":[{\"menu_item_id\":\"$item_id\",\"quantity\":2}]}"
# The reservation service learns of the activation through menu-events; until then the pre-order is refused.
reservation=$(call_caught_up POST /api/v1/reservations "$run_id-book" "$booking" guest)
reservation_id=$(echo "$reservation" | json 'd["id"]')
pass "reservation $reservation_id for $starts_at"

say "mark the soup unavailable"
call PATCH "/api/v1/menus/$menu_id/items/$item_id/availability" "$run_id-unavailable" '{"available":false}' >/dev/null
pass "unavailable"

say "confirm the reservation"
status=$(call PATCH "/api/v1/reservations/$reservation_id/confirm" "$run_id-confirm" | json 'd["status"]')
[ "$status" = confirmed ] || fail "status is $status"
pass "confirmed"

say "every event is on its stream with the request id as correlation_id"
expect_event "$menu_stream" MenuCreated "$menu_id" "$run_id-create"
expect_event "$menu_stream" MenuActivated "$menu_id" "$run_id-activate"
expect_event "$menu_stream" ItemAvailabilityChanged "$menu_id" "$run_id-unavailable"
expect_event "$reservation_stream" ReservationCreated "$reservation_id" "$run_id-book"
expect_event "$reservation_stream" ReservationConfirmed "$reservation_id" "$run_id-confirm"

say "the reservation shows the problem"
problems=""
for _ in $(seq 1 50); do
  problems=$(call GET "/api/v1/reservations/$reservation_id" "$run_id-read" | json 'json.dumps(d["problems"])')
  [ "$problems" != "[]" ] && break
  sleep 0.1
done
echo "$problems" | python3 -c "
import json, sys
problems = json.load(sys.stdin)
assert len(problems) == 1 and problems[0]['menu_item_id'] == '$item_id', problems
print('    ok:', problems[0]['reason'])" || fail "problems are $problems"

say "consumer group reservation-service has nothing pending"
pending=1
for _ in $(seq 1 50); do
  pending=$("${redis[@]}" XPENDING "$menu_stream" reservation-service | head -n 1)
  [ "$pending" = 0 ] && break
  sleep 0.1
done
[ "$pending" = 0 ] || fail "$pending entries pending"
pass "0 pending on $menu_stream"

risotto_id=$(echo "$menu" | json 'd["items"][1]["id"]')

say "stock the risotto: an ingredient, its recipe, rice for three portions"
rice=$(call POST /api/v1/ingredients "$run_id-rice" "{\"name\":\"Rice $run_id\",\"unit\":\"g\"}" | json 'd["id"]')
recipe="{\"lines\":[{\"ingredient_id\":\"$rice\",\"quantity\":100}]}"
# The inventory learns the menu's items from menu-events.
call_caught_up PUT "/api/v1/recipes/$risotto_id" "$run_id-recipe" "$recipe" >/dev/null
call POST "/api/v1/ingredients/$rice/receipts" "$run_id-receipt" '{"quantity":300}' >/dev/null
portions=$(call GET "/api/v1/portions?menu_item_id=$risotto_id" "$run_id-portions" | json 'd["portions"][0]["portions_left"]')
[ "$portions" = 3 ] || fail "portions left: $portions"
pass "rice $rice, 3 portions of risotto"

# order_status ORDER WANTED: waits up to 10 s for the order's status.
order_status() {
  local order=$1 wanted=$2 status=""
  for _ in $(seq 1 100); do
    status=$(call GET "/api/v1/orders/$order" "$run_id-read-order" | json 'd["status"]')
    [ "$status" = "$wanted" ] && { pass "order $order is $wanted"; return 0; }
    sleep 0.1
  done
  fail "order $order is $status, not $wanted"
}

say "place a takeaway of one risotto: the saga reserves stock, creates and confirms the ticket"
takeaway="{\"kind\":\"takeaway\",\"lines\":[{\"menu_item_id\":\"$risotto_id\",\"quantity\":1}]}"
# Setting the recipe with no stock made the risotto sold out; the receipt puts it back on the
# menu, and the order service learns that through menu-events. Until then the order is refused.
order=$(call_caught_up POST /api/v1/orders "$run_id-order" "$takeaway" | json 'd["id"]')
order_status "$order" approved

say "the kitchen accepts, cooks, readies and hands it over; the order is completed"
ticket=""
for _ in $(seq 1 50); do
  ticket=$(call GET "/api/v1/tickets?limit=100" "$run_id-tickets" | json "next((t['id'] for t in d['tickets'] if t['order_id'] == '$order'), '')")
  [ -n "$ticket" ] && break
  sleep 0.1
done
[ -n "$ticket" ] || fail "no ticket for order $order"
ready_by=$(python3 -c 'import datetime as d; print((d.datetime.now(d.timezone.utc) + d.timedelta(minutes=20)).isoformat())')
call POST "/api/v1/tickets/$ticket/accept" "$run_id-accept" "{\"ready_by\":\"$ready_by\"}" >/dev/null
call POST "/api/v1/tickets/$ticket/start" "$run_id-start" >/dev/null
order_status "$order" preparing
call POST "/api/v1/tickets/$ticket/ready" "$run_id-ready" >/dev/null
order_status "$order" ready
call POST "/api/v1/tickets/$ticket/pick-up" "$run_id-pick-up" >/dev/null
order_status "$order" picked_up
call POST "/api/v1/orders/$order/complete" "$run_id-complete" >/dev/null
order_status "$order" completed

say "an order of ten risottos is rejected, naming the shortage"
short=$(call POST /api/v1/orders "$run_id-short" "{\"kind\":\"takeaway\",\"lines\":[{\"menu_item_id\":\"$risotto_id\",\"quantity\":10}]}" | json 'd["id"]')
order_status "$short" rejected
reason=$(call GET "/api/v1/orders/$short" "$run_id-read-short" | json 'd["reason"]')
[[ $reason == *"$risotto_id"* && $reason == *"10 asked, 2 available"* ]] || fail "the reason is: $reason"
pass "$reason"

say "every step of the orders is on its stream with the request id that started it"
expect_event "$order_stream" OrderPlaced "$order" "$run_id-order"
expect_event "$inventory_stream" StockReserved "$order" "$run_id-order"
expect_event "$kitchen_stream" TicketCreated "$ticket" "$run_id-order"
expect_event "$kitchen_stream" TicketConfirmed "$ticket" "$run_id-order"
expect_event "$order_stream" OrderApproved "$order" "$run_id-order"
expect_event "$kitchen_stream" TicketAccepted "$ticket" "$run_id-accept"
expect_event "$kitchen_stream" TicketPreparationStarted "$ticket" "$run_id-start"
expect_event "$order_stream" OrderPreparing "$order" "$run_id-start"
expect_event "$inventory_stream" StockCommitted "$order" "$run_id-start"
expect_event "$order_stream" OrderReady "$order" "$run_id-ready"
expect_event "$order_stream" OrderPickedUp "$order" "$run_id-pick-up"
expect_event "$order_stream" OrderCompleted "$order" "$run_id-complete"
expect_event "$inventory_stream" StockReservationRejected "$short" "$run_id-short"
expect_event "$order_stream" OrderRejected "$short" "$run_id-short"

echo "all checks passed"
