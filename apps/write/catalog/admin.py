from functools import partial

from django import forms
from django.contrib import admin

from apps.cqrs.admin import CommandAdmin, events_link, run_command
from apps.write.catalog import services
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
        return [*self.change_fields, "isbn", "credited", "discontinued", "events"]

    def get_readonly_fields(self, request, obj=None):
        return ("isbn", "credited", "discontinued", "events") if obj else ()

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
