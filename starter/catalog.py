"""The product catalog, as Klaviyo and Braze keep one: what a cart email can say about a product
beyond what the cart event carried (name, link, image, price, rating, reviews).

PUT /v1/catalog/products/{product_id}   create or replace one product
PUT /v1/catalog/products                create or replace several: {"products": [...]}

The send activity completes each cart line from it (activities/sending.py `with_catalog`), and
templates may also read `catalog[product_id]`. Shopify's products/update keeps it current when
that source is configured (starter/sources/shopify.py).
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator

from activities.store import CatalogProduct

router = APIRouter()

ProductId = Annotated[str, Path(min_length=1, max_length=255)]
Number = Annotated[float, Strict()]
"""A JSON number (an integer too), never `true` or "4.5"."""


class Review(BaseModel):
    """One customer review, as a template shows it."""

    model_config = ConfigDict(extra="forbid")

    author: str | None = Field(default=None, max_length=200)
    rating: Number | None = Field(default=None, ge=0, le=5)
    text: str = Field(min_length=1, max_length=2000)


class ProductIn(BaseModel):
    """A product's catalog entry; every field optional but the ID (in the path or the item)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=500)
    url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://")
    image_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://")
    price: Number | None = Field(default=None, ge=0)
    currency: str | None = Field(default=None, min_length=3, max_length=8)
    rating: Number | None = Field(default=None, ge=0, le=5)
    review_count: int | None = Field(default=None, ge=0, le=2**31 - 1)
    reviews: list[Review] = Field(default_factory=list, max_length=20)

    @field_validator("price", "rating")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("review_count", mode="before")
    @classmethod
    def _count(cls, value: object) -> object:
        if isinstance(value, bool | str):
            raise ValueError("must be a whole number")
        return value

    def row(self, product_id: str) -> CatalogProduct:
        return CatalogProduct(
            product_id=product_id,
            **self.model_dump(exclude={"reviews", "product_id"}),
            reviews=[r.model_dump(exclude_none=True) for r in self.reviews],
        )


class ProductItem(ProductIn):
    product_id: str = Field(min_length=1, max_length=255)


class ProductBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    products: list[ProductItem] = Field(min_length=1, max_length=1000)


class Stored(BaseModel):
    stored: int


@router.put("/v1/catalog/products/{product_id}")
async def put_product(product_id: ProductId, product: ProductIn, request: Request) -> Stored:
    """Create or replace one product's catalog entry."""
    store = request.app.state.store
    await asyncio.to_thread(store.upsert_products, [product.row(product_id)])
    return Stored(stored=1)


@router.put("/v1/catalog/products")
async def put_products(batch: ProductBatch, request: Request) -> Stored:
    """Create or replace several products at once (all or none)."""
    rows = {item.product_id: item.row(item.product_id) for item in batch.products}
    await asyncio.to_thread(request.app.state.store.upsert_products, list(rows.values()))
    return Stored(stored=len(rows))
