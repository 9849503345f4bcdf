"""Customer pages. They read the read models only, and change state only through the command
services; a refused command becomes a message on the form, never a server error."""

import datetime
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth import login, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_POST

from apps.cqrs.consistency import (
    PositionBeyondHead,
    ReadWait,
    wait_for_position,
    waited_upstream,
    waits,
)
from apps.cqrs.errors import NON_FIELD, Refusal, refusal
from apps.read.catalog import selectors as catalog
from apps.read.catalog.filters import BookListingFilter
from apps.read.orders import selectors as orders
from apps.read.reports import selectors as reports
from apps.storefront import cart
from apps.storefront.forms import (
    AddToCartForm,
    CartLineForm,
    CheckoutForm,
    EmailForm,
    PasswordForm,
    ProfileForm,
    SignUpForm,
)
from apps.write.customers import services as customer_services
from apps.write.customers import tokens
from apps.write.orders import services as order_services
from apps.write.orders.services import LineInput

PAGE_SIZE = 24
# How long the confirmation page waits for the read model before it says "processing".
CONFIRMATION_WAIT_SECONDS = 0.5


def _refused(exc: Exception) -> Refusal:
    """The refusal (apps/cqrs/errors.py) a page shows for `exc`; the 404 or 403 page instead
    when that is what it is. An error that is no refusal stays what it is."""
    refused = refusal(exc)
    if refused is None:
        raise exc
    if refused.kind == "not found":
        raise Http404(refused.message) from exc
    if refused.kind == "forbidden":
        raise PermissionDenied(refused.message) from exc
    return refused


def _run(form, command):
    """Run a command for a form: its refusals become form errors. Returns the result, or None
    when it was refused."""
    try:
        return command()
    except Exception as exc:
        refused = _refused(exc)
        for name, messages in (refused.fields or {NON_FIELD: [refused.message]}).items():
            form.add_error(name if name in form.fields else None, messages)
    return None


def home(request):
    week_start = timezone.now().date() - datetime.timedelta(days=6)
    best = reports.bestsellers(start=week_start, days=7, limit=8)
    books = catalog.book_listings().in_bulk([row["book_id"] for row in best])
    return render(
        request,
        "storefront/home.html",
        {
            "bestsellers": [books[row["book_id"]] for row in best if row["book_id"] in books],
            "new_books": catalog.new_books(),
        },
    )


# The orders a shopper may choose on the list pages: (label, ORDER BY). Relevance only for a
# search; title order pages by keyset, the others by number.
SORTS = {
    "relevance": ("Most relevant", catalog.RELEVANCE),
    "title": ("Title", ("title", "book_id")),
    "price": ("Price, low to high", ("price", "title", "book_id")),
    "-price": ("Price, high to low", ("-price", "title", "book_id")),
    "newest": ("Newest", ("-published_on", "title", "book_id")),
}


def book_list(request):
    filters = BookListingFilter(request.GET, queryset=catalog.book_listings())
    valid = filters.is_valid()
    query = filters.form.cleaned_data.get("q", "").strip() if valid else ""
    sort = request.GET.get("sort") or ("relevance" if query else "title")
    if sort not in SORTS or (sort == "relevance" and not query):
        sort = "title"
    if query:
        unsearched = filters.unsearched()
        search = catalog.search_query(unsearched, q=query)
        books = catalog.searched(unsearched, query=search)
        return _numbered_results(
            request, filters, books, query=query, sort=sort, search=(unsearched, search)
        )
    books = filters.qs if valid else catalog.book_listings().none()
    if sort != "title":
        return _numbered_results(request, filters, books, query=query, sort=sort)
    after_title, after_id = request.GET.get("after_title"), request.GET.get("after_id", "")
    if after_title is not None and after_id.isdigit():
        books = catalog.books_after(books, title=after_title, book_id=int(after_id))
    page = list(books.order_by("title", "book_id")[: PAGE_SIZE + 1])
    next_query = None
    if len(page) > PAGE_SIZE:
        page = page[:PAGE_SIZE]
        query = request.GET.copy()
        query["after_title"], query["after_id"] = page[-1].title, str(page[-1].book_id)
        next_query = query.urlencode()
    return render(
        request,
        "storefront/book_list.html",
        {
            "filters": filters,
            "books": page,
            "next_query": next_query,
            "total": None,  # counting the whole catalog is what keyset pages avoid
            **_sorting("title", ""),
        },
    )


def _sorting(sort: str, query: str) -> dict:
    choices = [(key, label) for key, (label, _) in SORTS.items() if key != "relevance" or query]
    return {"sort": sort, "sort_choices": choices}


# Ranked and sorted lists page by number; a hundred pages is more than anyone reads.
SEARCH_PAGES = 100
# Matches are counted up to what those pages can show, and said to be more beyond: counting
# every match of a common word costs a scan of tens of thousands of rows at a million books.
COUNT_CAP = SEARCH_PAGES * PAGE_SIZE


def _numbered_results(
    request, filters, books, *, query: str, sort: str, heading: str = "", search=None
):
    """Search results (most relevant first unless another order is chosen) and sorted lists,
    with their count and previous/next pages. `search`: the books as filtered but not
    searched and what the search looks for, which relevance order pages by."""
    raw = request.GET.get("page", "1")
    number = min(int(raw), SEARCH_PAGES) if raw.isdigit() and int(raw) > 0 else 1
    total = books.order_by()[: COUNT_CAP + 1].count()
    start = (number - 1) * PAGE_SIZE
    if sort == "relevance":
        unsearched, wanted = search
        page = catalog.ranked_page(unsearched, query=wanted, start=start, size=PAGE_SIZE)
    else:
        page = list(books.order_by(*SORTS[sort][1])[start : start + PAGE_SIZE])

    def page_query(n: int) -> str:
        params = request.GET.copy()
        params["page"] = str(n)
        return params.urlencode()

    return render(
        request,
        "storefront/book_list.html",
        {
            "filters": filters,
            "books": page,
            "query": query,
            "corrected": search[1].corrected if search else None,
            "heading": heading,
            "total": min(total, COUNT_CAP),
            "more_than": total > COUNT_CAP,
            **_sorting(sort, query),
            "next_query": page_query(number + 1)
            if start + PAGE_SIZE < total and number < SEARCH_PAGES
            else None,
            "previous_query": page_query(number - 1) if number > 1 else None,
        },
    )


def author_books(request, author_id: int):
    """An author's books, found through the listing's authors (the read model has no author
    table: an author with no book in the catalog has no page)."""
    books = catalog.books_by_author(catalog.book_listings(), author_id=author_id)
    first = books.order_by("book_id").first()
    if first is None:
        raise Http404("No such author.")
    name = next(a["name"] for a in first.authors if a["id"] == author_id)
    filters = BookListingFilter(None, queryset=catalog.book_listings())
    sort = request.GET.get("sort", "")
    sort = sort if sort in SORTS and sort != "relevance" else "title"
    return _numbered_results(
        request, filters, books, query="", sort=sort, heading=f"Books by {name}"
    )


def book_detail(request, book_id: int):
    try:
        book = catalog.book_listing_get(book_id=book_id)
    except ObjectDoesNotExist:
        raise Http404("No such book.") from None
    form = AddToCartForm(initial={"book_id": book.book_id, "quantity": 1})
    return render(request, "storefront/book_detail.html", {"book": book, "form": form})


@require_POST
def cart_add(request):
    form = AddToCartForm(request.POST)
    if form.is_valid():
        book_id = form.cleaned_data["book_id"]
        book = catalog.book_listings().filter(book_id=book_id).first()
        if book is None:
            form.add_error(None, "That book is not in the catalog.")
        elif book.discontinued:
            form.add_error(None, "That book is no longer sold.")
        else:
            in_cart = cart.items(request.session).get(book_id, 0)
            limit = _shelf_limit(book)
            if limit is not None and limit <= in_cart:
                form.add_error(None, f"Only {limit} left, and your cart holds them all.")
            else:
                _put_in_cart(request, book, in_cart + form.cleaned_data["quantity"])
                return redirect("storefront:cart")
    messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
    back = request.POST.get("book_id", "")
    if back.isdigit() and catalog.book_listings().filter(book_id=int(back)).exists():
        return redirect("storefront:book", book_id=int(back))
    return redirect("storefront:books")


def _shelf_limit(book) -> int | None:
    """Without backorders, a cart holds at most what is on the shelf, as the read model last
    saw it (checkout checks the stock itself); None: no limit."""
    return None if book.allow_backorder else max(book.quantity_available, 0)


def _put_in_cart(request: HttpRequest, book, wanted: int) -> None:
    limit = _shelf_limit(book)
    quantity = wanted if limit is None else min(wanted, limit)
    cart.set_quantity(request.session, book_id=book.book_id, quantity=quantity)
    if quantity < wanted:
        messages.warning(request, f"Only {limit} left: your cart holds {quantity}.")
    else:
        messages.success(request, "Your cart is updated.")


def cart_view(request):
    if request.method == "POST":
        form = CartLineForm(request.POST)
        if form.is_valid():
            book = catalog.book_listings().filter(book_id=form.cleaned_data["book_id"]).first()
            if book is None or form.cleaned_data["quantity"] == 0:
                cart.set_quantity(request.session, **form.cleaned_data)
            else:
                _put_in_cart(request, book, form.cleaned_data["quantity"])
            return redirect("storefront:cart")
        messages.error(request, "Enter a quantity from 0 to 100.")
    rows, total = cart.lines(request.session)
    return render(request, "storefront/cart.html", {"rows": rows, "total": total})


@login_required
def checkout(request):
    rows, total = cart.lines(request.session)
    if not rows:
        messages.info(request, "Your cart is empty.")
        return redirect("storefront:books")
    form = CheckoutForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        lines: list[LineInput] = [
            {"book_id": r["book"].book_id, "quantity": r["quantity"]} for r in rows
        ]
        order = _run(
            form,
            lambda: order_services.order_checkout(
                actor=request.user,
                lines=lines,
                shipping_address=form.cleaned_data["shipping_address"],
                card_number=form.cleaned_data["card_number"],
            ),
        )
        if order:
            cart.clear(request.session)
            messages.success(
                request, f"Thank you! Order #{order.pk} is placed; a confirmation is on its way."
            )
            position = request.cqrs_scope.last_position
            url = reverse("storefront:order", args=[order.pk])
            return HttpResponseRedirect(f"{url}?after={position}")
    return render(request, "storefront/checkout.html", {"form": form, "rows": rows, "total": total})


@login_required
def order_list(request):
    summaries = orders.order_summaries(customer_id=request.user.pk)[:50]
    totals = orders.customer_totals(customer_id=request.user.pk)
    return render(request, "storefront/order_list.html", {"orders": summaries, "totals": totals})


@login_required
@waits(ReadWait(("orders.history",), parameter="after", timeout=CONFIRMATION_WAIT_SECONDS))
def order_detail(request, order_id: int):
    raw = request.GET.get("after", "")
    after = int(raw) if raw.isdigit() else None
    try:
        consistency = wait_for_position(
            projector_names=["orders.history"],
            min_position=after,
            timeout=0 if waited_upstream(request) else CONFIRMATION_WAIT_SECONDS,
        )
    except PositionBeyondHead:  # not a position this page was sent with: show what there is
        after, consistency = (
            None,
            wait_for_position(projector_names=["orders.history"], min_position=None),
        )
    summary = orders.order_summary_for(customer_id=request.user.pk, order_id=order_id)
    if summary is None:
        if after is not None and not consistency.satisfied:
            return render(request, "storefront/order_processing.html", {"order_id": order_id})
        raise Http404("No such order.")
    lines = [
        {**line, "subtotal": Decimal(str(line["unit_price"])) * line["quantity"]}
        for line in summary.lines
    ]
    return render(
        request,
        "storefront/order_detail.html",
        {"order": summary, "lines": lines, "can_cancel": summary.status in {"placed", "paid"}},
    )


@login_required
@require_POST
def order_cancel(request, order_id: int):
    try:
        order_services.order_cancel(
            actor=request.user, order_id=order_id, reason="Cancelled by the customer"
        )
    except Exception as exc:
        messages.error(request, _refused(exc).message)
        return redirect("storefront:order", order_id=order_id)
    messages.success(request, "Your order was cancelled; any payment will be refunded.")
    url = reverse("storefront:order", args=[order_id])
    return HttpResponseRedirect(f"{url}?after={request.cqrs_scope.last_position}")


def _next_url(request: HttpRequest) -> str | None:
    """The page a log-in or sign-up was asked to return to, if it is one of ours."""
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return wanted if wanted and safe else None


class LogInView(auth_views.LoginView):
    """Django's log-in; a guest sent here on the way to the checkout is told why, and offered
    an account that brings them back with their cart."""

    template_name = "storefront/form_page.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        after = _next_url(self.request)
        to_checkout = after == reverse("storefront:checkout")
        sign_up = reverse("storefront:sign-up")
        context.update(
            title="Log in",
            aside=("storefront:password-reset", "Forgot your password?"),
            lead="Log in to check out: your cart stays as it is." if to_checkout else "",
            next_is_checkout=to_checkout,
            sign_up_url=f"{sign_up}?{urlencode({'next': after})}" if after else sign_up,
        )
        return context


def sign_up(request):
    form = SignUpForm(request.POST or None)
    after = _next_url(request)
    if request.method == "POST" and form.is_valid():
        customer = _run(form, lambda: customer_services.customer_sign_up(**form.cleaned_data))
        if customer:
            login(request, customer.user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Welcome to the bookstore.")
            return redirect(after or "storefront:home")
    context = {"form": form, "title": "Sign up", "next": after or ""}
    return render(request, "storefront/form_page.html", context)


def _profile_initial(request) -> dict:
    current = orders.customer_profile(customer_id=request.user.pk)
    if current is None:
        return {}
    return {"full_name": current.full_name, "shipping_address": current.shipping_address}


@login_required
def profile(request):
    form = ProfileForm(request.POST or None, initial=_profile_initial(request))
    if request.method == "POST" and form.is_valid():
        updated = _run(
            form,
            lambda: customer_services.customer_update_profile(
                actor=request.user, **form.cleaned_data
            ),
        )
        if updated:
            messages.success(request, "Your profile is saved.")
            return redirect("storefront:profile")
    return _profile_page(request, form=form)


def _profile_page(request, **forms):
    context = {
        "form": forms.get("form") or ProfileForm(initial=_profile_initial(request)),
        "email_form": EmailForm(),
        "password_form": PasswordForm(),
        **forms,
        "title": "Your profile",
        "token": tokens.token_for(user=request.user),
    }
    return render(request, "storefront/profile.html", context)


@login_required
@require_POST
def profile_email(request):
    form = EmailForm(request.POST)
    if form.is_valid() and _run(
        form,
        lambda: customer_services.customer_change_email(actor=request.user, **form.cleaned_data),
    ):
        messages.success(request, f"Mail now goes to {form.cleaned_data['email']}.")
        return redirect(f"{reverse('storefront:profile')}#email")
    return _profile_page(request, email_form=form)


@login_required
@require_POST
def profile_password(request):
    form = PasswordForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        user = _run(
            form,
            lambda: customer_services.customer_change_password(
                actor=request.user,
                old_password=data["old_password"],
                new_password=data["new_password"],
            ),
        )
        if user:
            update_session_auth_hash(request, user)  # this session stays signed in
            messages.success(request, "Your password is changed.")
            return redirect(f"{reverse('storefront:profile')}#password")
    return _profile_page(request, password_form=form)


@login_required
@require_POST
def profile_token(request):
    action = request.POST.get("action")
    if action == "rotate":
        tokens.token_rotate(user=request.user)
        messages.success(request, "Your API token is new; the old one no longer works.")
    elif action == "revoke":
        tokens.token_revoke(user=request.user)
        messages.success(request, "Your API token is revoked.")
    else:
        messages.error(request, "Choose to rotate or revoke the token.")
    return redirect(f"{reverse('storefront:profile')}#api-token")
