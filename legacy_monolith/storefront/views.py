"""Storefront pages: products, the session cart, checkout and order history.

Every state change is a POST answered by a redirect (post/redirect/get) with a
flash message, except a checkout that fails, which re-renders the form with
the error so the customer can fix the card and try again. Every page that
answers GET answers HEAD too (``require_safe``): the same status and headers,
no body (link checkers, load balancers and ``curl -I`` send HEAD).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import F, Q, QuerySet, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import (
    require_http_methods,
    require_POST,
    require_safe,
)

from ..catalog.models import Category, Product
from ..inventory import services as inventory
from ..orders import services as orders
from ..orders.checkout_port import (
    CheckoutRefused,
    CheckoutUnavailable,
    OrdersServiceCheckout,
    checkout_backend,
)
from ..orders.exceptions import InvalidOrderState
from ..orders.models import Order
from .cart import Cart
from .forms import AddToCartForm, CheckoutForm, RemoveFromCartForm, UpdateCartForm

PRODUCTS_PER_PAGE = 12
ORDERS_PER_PAGE = 10
MIN_VERSION_KEY = "orders_min_version"
"""The orders service's version of the customer's last checkout (session)."""


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    """The shop's front door is the product list."""
    return redirect("storefront:product-list")


@require_safe
def product_list(request: HttpRequest) -> HttpResponse:
    """Active products, filtered by ``?category=<slug>`` and ``?q=<text>``."""
    products = _with_availability(
        Product.objects.filter(is_active=True).select_related("category")
    )
    category = None
    if slug := request.GET.get("category", ""):
        category = get_object_or_404(Category, slug=slug)
        products = products.filter(category=category)
    query = request.GET.get("q", "").strip()
    if query:
        products = products.filter(
            Q(name__icontains=query)
            | Q(description__icontains=query)
            | Q(sku__icontains=query)
        )
    page = Paginator(products.order_by("name", "id"), PRODUCTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "storefront/product_list.html",
        {
            "page": page,
            "categories": Category.objects.order_by("name"),
            "category": category,
            "query": query,
            "filters": _filters_querystring(request),
        },
    )


@require_safe
def product_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """One product: price, availability and the add-to-cart form."""
    product = get_object_or_404(
        Product.objects.select_related("category"), slug=slug, is_active=True
    )
    form = AddToCartForm(initial={"product": product.pk, "quantity": 1})
    return render(
        request,
        "storefront/product_detail.html",
        {
            "product": product,
            "available": inventory.available(product.pk),
            "form": form,
        },
    )


@require_safe
def cart_detail(request: HttpRequest) -> HttpResponse:
    """The cart with today's prices and a form per line."""
    cart = Cart(request.session)
    return render(
        request,
        "storefront/cart.html",
        {"lines": list(cart), "total": cart.total()},
    )


@require_POST
def cart_add(request: HttpRequest) -> HttpResponse:
    """Add a product to the cart, then show the cart."""
    form = AddToCartForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a quantity between 1 and 99.")
        return redirect("storefront:cart")
    product = get_object_or_404(
        Product, pk=form.cleaned_data["product"], is_active=True
    )
    quantity = Cart(request.session).add(product.pk, form.cleaned_data["quantity"])
    messages.success(request, f"{product.name}: {quantity} in your cart.")
    return redirect("storefront:cart")


@require_POST
def cart_update(request: HttpRequest) -> HttpResponse:
    """Change a line's quantity (0 removes it)."""
    form = UpdateCartForm(request.POST)
    if form.is_valid():
        Cart(request.session).set(
            form.cleaned_data["product"], form.cleaned_data["quantity"]
        )
        messages.success(request, "Cart updated.")
    else:
        messages.error(request, "Choose a quantity between 0 and 99.")
    return redirect("storefront:cart")


@require_POST
def cart_remove(request: HttpRequest) -> HttpResponse:
    """Remove a line from the cart."""
    form = RemoveFromCartForm(request.POST)
    if form.is_valid():
        Cart(request.session).remove(form.cleaned_data["product"])
        messages.success(request, "Removed from your cart.")
    return redirect("storefront:cart")


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def checkout(request: HttpRequest) -> HttpResponse:
    """Pay for the cart. Success redirects to the new order's page."""
    cart = Cart(request.session)
    lines = list(cart)
    if not lines:
        messages.info(request, "Your cart is empty.")
        return redirect("storefront:cart")
    form = CheckoutForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # Local transaction or the orders service's saga: MONOLITH_CHECKOUT.
        try:
            placed = checkout_backend().place(
                request.user,
                cart.items(),
                form.cleaned_data["card_number"],
                cart.checkout_key(request.user.pk),
            )
        except CheckoutRefused as exc:
            form.add_error(exc.field, exc.message)
        except CheckoutUnavailable as exc:
            form.add_error(None, exc.message)  # the cart is kept: try again
        else:
            cart.clear()
            if placed.version:
                request.session[MIN_VERSION_KEY] = placed.version
            messages.success(request, f"Thank you! Order {placed.number} is confirmed.")
            return redirect("storefront:order-detail", number=placed.number)
    return render(
        request,
        "storefront/checkout.html",
        {"form": form, "lines": lines, "total": cart.total()},
    )


@login_required
@require_safe
def order_list(request: HttpRequest) -> HttpResponse:
    """The signed-in customer's orders, newest first.

    With ``MONOLITH_CHECKOUT=orders-service``, the first page also lists the
    newest orders of the orders service this database does not hold.
    """
    mine = orders.visible_orders(request.user).filter(customer=request.user)
    page = Paginator(mine.order_by("-created_at", "-id"), ORDERS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context: dict[str, object] = {"page": page}
    if settings.MONOLITH_CHECKOUT == "orders-service" and page.number == 1:
        context.update(_service_orders(request, mine))
    return render(request, "storefront/order_list.html", context)


@login_required
@require_safe
def order_detail(request: HttpRequest, number: str) -> HttpResponse:
    """One order with its lines, payment and history (404 if not yours).

    With ``MONOLITH_CHECKOUT=orders-service``, an order this database does not
    hold was placed by the orders service: it is read from there.
    """
    order = orders.visible_orders(request.user).filter(number=number).first()
    if order is None and settings.MONOLITH_CHECKOUT == "orders-service":
        return _service_order_detail(request, number)
    if order is None:
        raise Http404("No Order matches the given query.")
    return render(
        request,
        "storefront/order_detail.html",
        {
            "order": order,
            "history": order.history.order_by("at", "id"),
            "can_cancel": order.status == "confirmed",
        },
    )


@login_required
@require_POST
def order_cancel(request: HttpRequest, number: str) -> HttpResponse:
    """Cancel an order, then show it again with the outcome."""
    order = get_object_or_404(orders.visible_orders(request.user), number=number)
    try:
        orders.cancel(order, request.user)
    except InvalidOrderState as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Order {number} is cancelled and refunded.")
    return redirect("storefront:order-detail", number=number)


def _service_orders(request: HttpRequest, mine: QuerySet[Order]) -> dict[str, object]:
    min_version = request.session.get(MIN_VERSION_KEY, 0)
    try:
        found = OrdersServiceCheckout().recent_orders(
            request.user,
            ORDERS_PER_PAGE,
            min_version if isinstance(min_version, int) else 0,
        )
    except CheckoutUnavailable:
        return {"service_problem": True}
    numbers = [o.get("number") for o in found]
    here = set(mine.filter(number__in=numbers).values_list("number", flat=True))
    service = []
    for order in found:
        if order.get("number") in here:
            continue  # a copy of one of ours (the relay imports them)
        created = parse_datetime(str(order.get("created_at") or ""))
        service.append({**order, "created_at": created})
    return {"service_orders": service}


def _service_order_detail(request: HttpRequest, number: str) -> HttpResponse:
    min_version = request.session.get(MIN_VERSION_KEY, 0)
    try:
        order = OrdersServiceCheckout().order(
            request.user, number, min_version if isinstance(min_version, int) else 0
        )
    except LookupError:
        raise Http404("No Order matches the given query.") from None
    except CheckoutUnavailable as exc:
        return render(
            request,
            "storefront/service_order.html",
            {"order": None, "number": number, "problem": exc.message},
            status=503,
        )
    return render(
        request,
        "storefront/service_order.html",
        {"order": order, "number": number},
    )


def _with_availability(products: QuerySet[Product]) -> QuerySet[Product]:
    return products.annotate(
        units=Sum(F("stock_levels__on_hand") - F("stock_levels__reserved"))
    )


def _filters_querystring(request: HttpRequest) -> str:
    """The list's filters, to keep them on pagination links."""
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()
