from functools import partial

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from apps.cqrs.admin import CommandAdmin, events_link, run_command
from apps.write.catalog import covers, services
from apps.write.catalog.models import Author, Book
from apps.write.catalog.validators import normalize_isbn, validate_isbn13


@admin.register(Author)
class AuthorAdmin(CommandAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)
    fields = ("name", "events")
    readonly_fields = ("events",)

    @admin.display(description="History")
    def events(self, obj):
        return events_link("author", obj.pk) if obj.pk else "-"

    def save_model(self, request, obj, form, change):
        if change:
            services.author_rename(actor=request.user, author_id=obj.pk, name=obj.name)
        else:
            obj.pk = services.author_add(actor=request.user, name=obj.name).pk


class BookAddForm(forms.ModelForm):
    authors = forms.ModelMultipleChoiceField(queryset=Author.objects.all())

    class Meta:
        model = Book
        fields = [
            "title", "subtitle", "isbn", "price", "format", "language", "published_on",
            "description",
        ]  # fmt: skip

    isbn = forms.CharField(label="ISBN-13", max_length=17, validators=[validate_isbn13])

    def clean_isbn(self):
        return normalize_isbn(self.cleaned_data["isbn"])


class CoverForm(forms.Form):
    cover = forms.ImageField(
        required=False,
        help_text=f"JPEG, PNG, GIF or WebP, up to {covers.MAX_BYTES // 2**20} MB; "
        "resized for the shop's pages.",
    )
    remove = forms.BooleanField(required=False, label="Remove the cover")

    def clean(self):
        data = super().clean() or {}
        if not data.get("cover") and not data.get("remove"):
            raise ValidationError("Choose an image, or tick “Remove the cover”.")
        return data


@admin.register(Book)
class BookAdmin(CommandAdmin):
    list_display = ("title", "isbn", "format", "language", "price", "discontinued")
    list_filter = ("format", "language", "discontinued")
    search_fields = ("title", "=isbn")
    actions = ["discontinue", "reinstate"]
    change_fields = (
        "title", "subtitle", "description", "format", "language", "published_on", "price",
    )  # fmt: skip

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = BookAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return [*BookAddForm.Meta.fields[:3], "authors", *BookAddForm.Meta.fields[3:]]
        return [*self.change_fields, "isbn", "credited", "cover", "discontinued", "events"]

    def get_readonly_fields(self, request, obj=None):
        return ("isbn", "credited", "cover", "discontinued", "events") if obj else ()

    def get_urls(self):
        cover = self.admin_site.admin_view(self.cover_view)
        return [
            path("<path:object_id>/cover/", cover, name="catalog_book_cover"),
            *super().get_urls(),
        ]

    @admin.display(description="Cover")
    def cover(self, obj):
        change = reverse("admin:catalog_book_cover", args=[obj.pk])
        if not obj.cover_small:
            return format_html('None · <a href="{}">Upload a cover</a>', change)
        return format_html(
            '<img src="{}" alt="Cover of {}" width="80"> <a href="{}">Change or remove</a>',
            default_storage.url(obj.cover_small),
            obj.title,
            change,
        )

    def cover_view(self, request, object_id: str) -> HttpResponse:
        """Upload or remove a book's cover. Not in the change form: that runs in one
        transaction, and the image must be stored before the command's transaction opens."""
        book = self.get_object(request, object_id)
        if book is None:
            raise Http404("No such book.")
        if not self.has_change_permission(request, book):
            raise PermissionDenied
        posted = request.method == "POST"
        form = CoverForm(request.POST, request.FILES) if posted else CoverForm()
        if posted and form.is_valid():
            upload = form.cleaned_data["cover"]
            try:
                names = None if form.cleaned_data["remove"] else covers.store_cover(upload.read())
                services.book_change_cover(actor=request.user, book_id=book.pk, cover=names)
            except ValidationError as exc:
                form.add_error("cover", exc.messages)
            else:
                done = "removed" if names is None else "changed"
                self.message_user(request, f"The cover of “{book}” was {done}.", messages.SUCCESS)
                return redirect("admin:catalog_book_change", book.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "book": book,
            "cover_url": default_storage.url(book.cover_large) if book.cover_large else None,
            "form": form,
            "title": f"Cover of {book}",
        }
        return TemplateResponse(request, "admin/catalog/book/cover.html", context)

    @admin.display(description="Authors")
    def credited(self, obj):
        return ", ".join(a.name for a in obj.authors.order_by("bookauthor__position"))

    @admin.display(description="History")
    def events(self, obj):
        return events_link("book", obj.pk)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            book = services.book_add(
                actor=request.user,
                author_ids=[a.pk for a in data["authors"]],
                **{f: data[f] for f in BookAddForm.Meta.fields},
            )
            obj.pk = book.pk
            return
        details = {
            f: data[f] for f in self.change_fields if f != "price" and f in form.changed_data
        }
        if details:
            services.book_change_details(actor=request.user, book_id=obj.pk, **details)
        if "price" in form.changed_data:
            services.book_change_price(actor=request.user, book_id=obj.pk, price=data["price"])

    @admin.action(description="Discontinue the selected books")
    def discontinue(self, request, queryset):
        for book in queryset:
            run_command(
                self,
                request,
                book.title,
                partial(services.book_discontinue, actor=request.user, book_id=book.pk),
            )

    @admin.action(description="Reinstate the selected books")
    def reinstate(self, request, queryset):
        for book in queryset:
            run_command(
                self,
                request,
                book.title,
                partial(services.book_reinstate, actor=request.user, book_id=book.pk),
            )
